"""Text -> chunks with character offsets, sized in the model's own tokens. Pure functions.

Sentences end at Chinese and English terminators (。！？；… and their ASCII forms, a full stop
before white space) and at line breaks. Sentences are packed greedily up to ``chunk_tokens``;
one longer than that is cut at token boundaries, so a run without punctuation is still split.
Every chunk is ``text[start:end]`` exactly, and together the chunks cover every non-space
character of the text.

Time and memory stay linear in the text, however it looks: the stages are generators, each
tokenizer call gets a bounded batch, and a sentence longer than ``window`` characters is
tokenized in pieces (see ``token_windows``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

# Character spans of each token of each text, without special tokens (the encoder's token_spans).
TokenSpans = Callable[[list[str]], list[list[tuple[int, int]]]]
# The number of tokens of each text, as len() of its spans but cheaper (the encoder's token_counts).
TokenCounts = Callable[[list[str]], list[int]]
Span = tuple[int, int]
Unit = tuple[int, int, int]  # (start, end, tokens) of a sentence or a piece of one

WINDOW = 32_768  # characters of one long sentence tokenized per call
_SENTENCE_END = re.compile(r"""(?:[。！？；!?;…]+|\.(?=\s|$))[”’」』》）)\]"']*|\n+""")
_BATCH = 2048  # texts per tokenizer call
_BATCH_CHARS = 262_144  # characters per tokenizer call: bounds the token spans held at once
_TAIL_CHARS = 1024  # characters of a word cut inside that are tokenized again (see _cut)
# CJK ideograph blocks, as BERT's tokenizer has them: it makes each such character a word
_CJK = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


@dataclass(frozen=True)
class Chunk:
    """A passage of a source text: ``text == source[start:end]``, ``line`` 1-based; ``page``
    (the PDF page it starts on) and ``heading`` (the headings it sits under) when known."""

    text: str
    start: int
    end: int
    line: int
    tokens: int
    page: int | None = None
    heading: str | None = None


def split_sentences(text: str) -> list[Span]:
    """(start, end) of each sentence, trimmed of surrounding white space; empty ones dropped."""
    return list(_sentences(text))


def _sentences(text: str) -> Iterator[Span]:
    begin = 0
    for match in _SENTENCE_END.finditer(text):
        yield from _trim(text, begin, match.end())
        begin = match.end()
    yield from _trim(text, begin, len(text))


def _trim(text: str, start: int, end: int) -> Iterator[Span]:
    """text[start:end] without surrounding white space, unless nothing is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        yield start, end


def chunk_text(
    text: str,
    token_spans: TokenSpans,
    chunk_tokens: int,
    overlap_tokens: int = 0,
    max_tokens: int | None = None,
    *,
    window: int = WINDOW,
    token_counts: TokenCounts | None = None,
) -> list[Chunk]:
    """Cut ``text`` into chunks of at most ``chunk_tokens`` tokens (hard limit ``max_tokens``).

    Consecutive chunks share up to ``overlap_tokens`` tokens of whole sentences. A sentence
    longer than ``window`` characters is tokenized in pieces of at most that many. Token spans
    are asked for only where a text must be cut; ``token_counts`` (default: from the spans)
    counts the rest.
    """
    if chunk_tokens < 1 or overlap_tokens < 0 or overlap_tokens >= chunk_tokens:
        raise ValueError("need chunk_tokens >= 1 and 0 <= overlap_tokens < chunk_tokens")
    if window < 2:
        raise ValueError("need window >= 2")
    limit = max_tokens or chunk_tokens
    counts = token_counts or (lambda texts: [len(spans) for spans in token_spans(texts)])
    units = _units(text, _sentences(text), token_spans, counts, chunk_tokens, window)
    chunks: list[Chunk] = []
    line, at = 1, 0
    for start, end, count in _counted(text, _pack(units, chunk_tokens, overlap_tokens), token_spans, counts, window):
        pieces: Iterable[Unit] = [(start, end, count)]
        if count > limit:
            # packing counts tokens sentence by sentence; joined text can tokenize longer
            windows = token_windows(text, start, end, token_spans, window)
            pieces = _cut(text, start, end, windows, limit, token_spans)
        for s, e, n in pieces:
            line, at = line + text.count("\n", at, s), s
            chunks.append(Chunk(text=text[s:e], start=s, end=e, line=line, tokens=n))
    return chunks


def _units(
    text: str, sentences: Iterable[Span], token_spans: TokenSpans, counts: TokenCounts, chunk_tokens: int, window: int
) -> Iterator[Unit]:
    """(start, end, tokens) of each sentence, long ones cut into pieces of chunk_tokens."""
    for batch in _batches(sentences, window):
        if len(batch) == 1 and batch[0][1] - batch[0][0] > window:
            start, end = batch[0]
            windows = token_windows(text, start, end, token_spans, window)
            yield from _cut(text, start, end, windows, chunk_tokens, token_spans)
            continue
        for (start, end), count in zip(batch, counts([text[s:e] for s, e in batch]), strict=True):
            if count <= chunk_tokens:
                yield start, end, count
            else:
                (spans,) = token_spans([text[start:end]])
                yield from _cut(
                    text, start, end, [[(start + s, start + e) for s, e in spans]], chunk_tokens, token_spans
                )


def _batches(spans: Iterable[Span], window: int) -> Iterator[list[Span]]:
    """Consecutive spans grouped for one tokenizer call; one longer than ``window`` comes alone."""
    batch: list[Span] = []
    chars = 0
    for start, end in spans:
        long = end - start > window
        if batch and (long or len(batch) == _BATCH or chars + end - start > _BATCH_CHARS):
            yield batch
            batch, chars = [], 0
        batch.append((start, end))
        chars += end - start
        if long:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def token_windows(
    text: str, start: int, end: int, token_spans: TokenSpans, window: int = WINDOW
) -> Iterator[list[Span]]:
    """The tokens of text[start:end] as absolute spans, from pieces of at most ``window`` characters.

    Pieces end where BERT's pre-tokenizer ends a word anyway (white space, punctuation, a CJK
    ideograph on either side), so for Chinese and space-separated text the tokens are those of
    one call on the whole text, with any WordPiece vocabulary. Only a word longer than half a
    window (by default 16,384 characters with no space, punctuation or CJK) is cut.
    """
    for batch in _batches(_pieces(text, start, end, window), window):
        for (s, _), spans in zip(batch, token_spans([text[s:e] for s, e in batch]), strict=True):
            yield [(s + a, s + b) for a, b in spans]


def _pieces(text: str, start: int, end: int, window: int) -> Iterator[Span]:
    """text[start:end] in pieces of at most ``window`` characters, all but the last over half that."""
    pos = start
    while end - pos > window:
        ends = (c for c in range(pos + window, pos + window // 2, -1) if _splits(text[c - 1]) or _splits(text[c]))
        cut = next(ends, pos + window)
        yield pos, cut
        pos = cut
    yield pos, end


def _splits(char: str) -> bool:
    """Whether BERT's pre-tokenizer ends a word at ``char``: white space, punctuation, CJK."""
    code = ord(char)
    if char in " \t\n\r" or (code < 128 and not char.isalnum() and char.isprintable()):
        return True
    if any(low <= code <= high for low, high in _CJK):
        return True
    category = unicodedata.category(char)
    return category == "Zs" or category.startswith("P")


def _cut(
    text: str, start: int, end: int, windows: Iterable[list[Span]], size: int, token_spans: TokenSpans
) -> Iterator[Unit]:
    """Cut text[start:end], whose tokens (absolute spans) come in ``windows``, into pieces of at
    most ``size`` tokens, each counted as the tokenizer counts it alone.

    A cut falls between words where one lies within the last ``size`` tokens, so every piece
    tokenizes alone as it did in context. Only a word longer than ``size`` tokens is cut inside;
    the rest of that word is then tokenized again from its new start (``xiaobu`` is ``xiao
    ##bu`` but ``bu`` alone is ``b ##u``).
    """
    pending: list[Span] = []
    piece_start = start
    for spans in windows:
        pending.extend(spans)
        first = 0
        while len(pending) - first > size:
            cut = next((k for k in range(first + size, first, -1) if _between_words(text, pending, k)), None)
            if cut is None:
                cut = first + size
                _retokenize_word_tail(text, pending, cut, token_spans)
            piece_end = pending[cut][0]
            yield from ((s, e, cut - first) for s, e in _trim(text, piece_start, piece_end))
            piece_start, first = piece_end, cut
        del pending[:first]
    yield from ((s, e, len(pending)) for s, e in _trim(text, piece_start, end))


def _between_words(text: str, spans: list[Span], k: int) -> bool:
    """Whether the pre-tokenizer ends a word between token ``k - 1`` and token ``k``: at white
    space or punctuation between them, or a CJK ideograph or punctuation on either side."""
    return any(_splits(c) for c in text[spans[k - 1][1] - 1 : spans[k][0] + 1])


def _retokenize_word_tail(text: str, spans: list[Span], k: int, token_spans: TokenSpans) -> None:
    """Replace the tokens of the word that token ``k`` continues, from ``k`` on, with those of
    that tail tokenized alone. The tail ends at the word's end, the end of ``spans`` or after
    ``_TAIL_CHARS`` (BERT makes a word over 100 characters one [UNK], so this bounds the work
    only for tokenizers without word limits, whose counts past that point stay as in context)."""
    tail_start = spans[k][0]
    ends = (
        j for j in range(k + 1, len(spans)) if _between_words(text, spans, j) or spans[j][0] - tail_start > _TAIL_CHARS
    )
    stop = next(ends, len(spans))
    (alone,) = token_spans([text[tail_start : spans[stop - 1][1]]])
    if alone:
        spans[k:stop] = [(tail_start + s, tail_start + e) for s, e in alone]


def _pack(units: Iterable[Unit], chunk_tokens: int, overlap_tokens: int) -> Iterator[Span]:
    """(start, end) of each chunk: consecutive units of at most chunk_tokens tokens together."""
    group: list[Unit] = []
    total = 0
    for unit in units:
        if group and total + unit[2] > chunk_tokens:
            yield group[0][0], group[-1][1]
            group = _overlap(group, min(overlap_tokens, chunk_tokens - unit[2]))
            total = sum(u[2] for u in group)
        group.append(unit)
        total += unit[2]
    if group:
        yield group[0][0], group[-1][1]


def _overlap(group: list[Unit], budget: int) -> list[Unit]:
    """The trailing sentences of a chunk, short of its first, that fit in ``budget`` tokens."""
    keep, total = len(group), 0
    while keep - 1 > 0 and total + group[keep - 1][2] <= budget:
        keep -= 1
        total += group[keep][2]
    return group[keep:]


def _counted(
    text: str, spans: Iterable[Span], token_spans: TokenSpans, counts: TokenCounts, window: int
) -> Iterator[Unit]:
    """Each span with its number of tokens."""
    for batch in _batches(spans, window):
        if len(batch) == 1 and batch[0][1] - batch[0][0] > window:
            start, end = batch[0]
            yield start, end, sum(len(w) for w in token_windows(text, start, end, token_spans, window))
            continue
        for (start, end), count in zip(batch, counts([text[s:e] for s, e in batch]), strict=True):
            yield start, end, count


def placed_alike(ours: Sequence[Chunk], theirs: Sequence[Chunk]) -> bool:
    """Whether two cuttings give the same passages in the same places (text, span, line, page,
    heading): what a reader sees. The same bytes read as another type (a ``.txt`` copy of a
    Markdown file) are cut otherwise."""

    def seen(chunks: Sequence[Chunk]) -> list[tuple[str, int, int, int, int | None, str | None]]:
        return [(c.text, c.start, c.end, c.line, c.page, c.heading) for c in chunks]

    return seen(ours) == seen(theirs)
