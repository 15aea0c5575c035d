"""Text -> chunks with character offsets, sized in the model's own tokens. Pure functions.

Sentences end at Chinese and English terminators (。！？；… and their ASCII forms, a full stop
before white space) and at line breaks. Sentences are packed greedily up to ``chunk_tokens``;
one longer than that is cut at token boundaries, so a run without punctuation is still split.
Every chunk is ``text[start:end]`` exactly, and together the chunks cover every non-space
character of the text.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass

# Character spans of each token of each text, without special tokens (the encoder's token_spans).
TokenSpans = Callable[[list[str]], list[list[tuple[int, int]]]]

_SENTENCE_END = re.compile(r"""(?:[。！？；!?;…]+|\.(?=\s|$))[”’」』》）)\]"']*|\n+""")
_BATCH = 2048  # sentences per tokenizer call


@dataclass(frozen=True)
class Chunk:
    """A passage of a source text: ``text == source[start:end]``, ``line`` 1-based."""

    text: str
    start: int
    end: int
    line: int
    tokens: int


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, trimmed of surrounding white space; empty ones dropped."""
    spans: list[tuple[int, int]] = []
    begin = 0
    for match in _SENTENCE_END.finditer(text):
        _append_trimmed(text, begin, match.end(), spans)
        begin = match.end()
    _append_trimmed(text, begin, len(text), spans)
    return spans


def _append_trimmed(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((start, end))


def chunk_text(
    text: str,
    token_spans: TokenSpans,
    chunk_tokens: int,
    overlap_tokens: int = 0,
    max_tokens: int | None = None,
) -> list[Chunk]:
    """Cut ``text`` into chunks of at most ``chunk_tokens`` tokens (hard limit ``max_tokens``).

    Consecutive chunks share up to ``overlap_tokens`` tokens of whole sentences.
    """
    if chunk_tokens < 1 or overlap_tokens < 0 or overlap_tokens >= chunk_tokens:
        raise ValueError("need chunk_tokens >= 1 and 0 <= overlap_tokens < chunk_tokens")
    limit = max_tokens or chunk_tokens
    units = _units(text, split_sentences(text), token_spans, chunk_tokens)
    groups = _pack(units, chunk_tokens, overlap_tokens)
    lines = _line_starts(text)
    chunks: list[Chunk] = []
    spans = [(units[first][0], units[last][1]) for first, last in groups]
    counts = _count(text, spans, token_spans)
    for (start, end), count in zip(spans, counts, strict=True):
        if count > limit:
            # packing counts tokens sentence by sentence; joined text can tokenize longer
            pieces = _cut(text, start, end, token_spans([text[start:end]])[0], limit)
            chunks.extend(_make(text, s, e, n, lines) for s, e, n in pieces)
        else:
            chunks.append(_make(text, start, end, count, lines))
    return chunks


def _units(
    text: str, sentences: list[tuple[int, int]], token_spans: TokenSpans, chunk_tokens: int
) -> list[tuple[int, int, int]]:
    """(start, end, tokens) of each sentence, long ones cut into pieces of chunk_tokens."""
    units: list[tuple[int, int, int]] = []
    for first in range(0, len(sentences), _BATCH):
        batch = sentences[first : first + _BATCH]
        for (start, end), spans in zip(batch, token_spans([text[s:e] for s, e in batch]), strict=True):
            if len(spans) <= chunk_tokens:
                units.append((start, end, len(spans)))
            else:
                units.extend(_cut(text, start, end, spans, chunk_tokens))
    return units


def _cut(text: str, start: int, end: int, spans: list[tuple[int, int]], size: int) -> list[tuple[int, int, int]]:
    """Cut text[start:end], whose tokens are ``spans``, at token boundaries into pieces of ``size``."""
    pieces: list[tuple[int, int, int]] = []
    for first in range(0, len(spans), size):
        piece_start = start if first == 0 else start + spans[first][0]
        last = min(first + size, len(spans))
        piece_end = end if last == len(spans) else start + spans[last][0]
        trimmed: list[tuple[int, int]] = []
        _append_trimmed(text, piece_start, piece_end, trimmed)
        pieces.extend((s, e, last - first) for s, e in trimmed)
    return pieces


def _pack(units: list[tuple[int, int, int]], chunk_tokens: int, overlap_tokens: int) -> list[tuple[int, int]]:
    """Group consecutive units into (first, last) index ranges of at most chunk_tokens tokens."""
    groups: list[tuple[int, int]] = []
    first, total = 0, 0
    for i, (_, _, tokens) in enumerate(units):
        if i > first and total + tokens > chunk_tokens:
            groups.append((first, i - 1))
            first, total = _overlap_start(units, first, i, overlap_tokens, chunk_tokens - tokens)
        total += tokens
    if units:
        groups.append((first, len(units) - 1))
    return groups


def _overlap_start(
    units: list[tuple[int, int, int]], first: int, nxt: int, overlap_tokens: int, room: int
) -> tuple[int, int]:
    """Where the next chunk starts: the trailing sentences of the last one that fit the overlap."""
    start, total = nxt, 0
    while start - 1 > first and total + units[start - 1][2] <= min(overlap_tokens, room):
        start -= 1
        total += units[start][2]
    return start, total


def _count(text: str, spans: list[tuple[int, int]], token_spans: TokenSpans) -> list[int]:
    counts: list[int] = []
    for first in range(0, len(spans), _BATCH):
        batch = spans[first : first + _BATCH]
        counts.extend(len(t) for t in token_spans([text[s:e] for s, e in batch]))
    return counts


def _line_starts(text: str) -> list[int]:
    return [m.end() for m in re.finditer("\n", text)]


def _make(text: str, start: int, end: int, tokens: int, line_starts: list[int]) -> Chunk:
    line = bisect.bisect_right(line_starts, start) + 1
    return Chunk(text=text[start:end], start=start, end=end, line=line, tokens=tokens)
