"""Hits widened into passages for a prompt: each hit with its neighbouring chunks, and hits
whose passages touch in one document merged into one. Pure functions over chunk rows.

Chunks are ``text[start:end]`` of their source, trimmed of white space and overlapping by up to
the index's overlap, so a passage is rebuilt from offsets: the part of each chunk past the end of
the one before, and between two that do not touch, the line breaks their line numbers show (or a
space).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from ..results import Hit, Passage
from ..storage.rows import ChunkRow
from .highlights import highlights

Row = ChunkRow


def windows(hits: Sequence[Hit], rows: Mapping[int, Row], context: int) -> list[tuple[int, int, int]]:
    """(document id, first seq, last seq) of each passage: every hit's chunk with ``context``
    chunks either side, windows that overlap or touch in one document joined."""
    spans: dict[int, list[tuple[int, int]]] = {}
    for hit in hits:
        document, first, last = window(rows[hit.chunk_id], context)
        spans.setdefault(document, []).append((first, last))
    joined: list[tuple[int, int, int]] = []
    for document, found in spans.items():
        found.sort()
        low, high = found[0]
        for start, end in found[1:]:
            if start > high + 1:
                joined.append((document, low, high))
                low = start
            high = max(high, end)
        joined.append((document, low, high))
    return joined


def window(row: Row, context: int) -> tuple[int, int, int]:
    """(document id, first seq, last seq) of ``row`` with ``context`` chunks either side."""
    return row.document_id, max(0, row.seq - context), row.seq + context


def around(chunk_id: int, chunks: Sequence[Row], query: str | None) -> Passage:
    """The passage made of ``chunks`` (the window around ``chunk_id``, in source order), with the
    spans of ``query``'s terms highlighted when a query is given."""
    text = join(chunks)
    return Passage(
        chunk_id=chunk_id,
        text=text,
        source=chunks[0].path,
        line=chunks[0].line,
        start=chunks[0].start,
        end=max(r.end for r in chunks),
        page=chunks[0].page,
        heading=chunks[0].heading,
        chunk_ids=tuple(r.id for r in chunks),
        highlights=tuple(highlights(text, query)) if query else (),
    )


def merge(
    hits: Sequence[Hit], rows: Mapping[int, Row], neighbours: Sequence[Row], context: int, query: str
) -> list[Hit]:
    """The passages around ``hits`` (ranked), best first: each carries the text of its chunks
    (``neighbours``: the rows of every window, in source order) and the rank, score and chunk
    id of the best hit in it."""
    by_window: dict[tuple[int, int, int], list[Row]] = {}
    spans = windows(hits, rows, context)
    for row in neighbours:
        for window in spans:
            if window[0] == row.document_id and window[1] <= row.seq <= window[2]:
                by_window.setdefault(window, []).append(row)
    passages: list[tuple[int, Hit]] = []
    for window, chunks in by_window.items():
        inside = [h for h in hits if _within(rows[h.chunk_id], window)]
        if not inside:
            continue
        chunks.sort(key=lambda r: r.seq)
        best = min(inside, key=lambda h: h.rank)
        text = join(chunks)
        lexical = any("lexical" in h.matched for h in inside)
        passage = replace(
            best,
            text=text,
            line=chunks[0].line,
            start=chunks[0].start,
            end=max(r.end for r in chunks),
            matched=_matched(inside),
            highlights=tuple(highlights(text, query)) if lexical else (),
            page=chunks[0].page,
            heading=chunks[0].heading,
            chunk_ids=tuple(r.id for r in chunks),
        )
        passages.append((best.rank, passage))
    passages.sort(key=lambda item: item[0])
    return [replace(p, rank=n) for n, (_, p) in enumerate(passages, 1)]


def _within(row: Row, window: tuple[int, int, int]) -> bool:
    return bool(row.document_id == window[0] and window[1] <= row.seq <= window[2])


def _matched(hits: Sequence[Hit]) -> str:
    found = {part for h in hits for part in h.matched.split("+")}
    return "+".join(name for name in ("dense", "lexical") if name in found)


def join(chunks: Sequence[Row]) -> str:
    """The source text covered by consecutive chunks (in source order), overlaps counted once."""
    parts = [chunks[0].text]
    end = chunks[0].end
    last_line = chunks[0].line + chunks[0].text.count("\n")  # the line ``end`` is on
    for row in chunks[1:]:
        if row.end <= end:
            continue
        if row.start >= end:  # a gap of white space: its line breaks, or one space
            breaks = row.line - last_line
            parts.append("\n" * breaks if breaks > 0 else " " if row.start > end else "")
            parts.append(row.text)
        else:
            parts.append(row.text[end - row.start :])
        end, last_line = row.end, row.line + row.text.count("\n")
    return "".join(parts)
