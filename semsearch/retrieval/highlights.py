"""Where a query's terms occur in a passage: the spans a hit highlights."""

from __future__ import annotations

import re
from functools import lru_cache

from ..documents.folding import aligned
from ..documents.terms import terms


def highlights(text: str, query: str) -> list[tuple[int, int]]:
    """Character spans of ``text`` where the query's terms occur, in order, not overlapping.

    Matching is on folded text (the terms are folded: Ｐｙｔｈｏｎ is python, 長城 is 长城); folding
    can change a string's length (記憶體 is 内存), so each folded character carries the span of
    ``text`` it came from, and a match is shown on the original characters.
    """
    wanted = _wanted(query)
    if not wanted:
        return []
    folded, starts, ends = aligned(text)
    spans: list[tuple[int, int]] = []
    taken = bytearray(len(folded))
    for term in wanted:
        if len(term) > len(folded):
            continue
        for found in re.finditer(re.escape(term), folded):
            start, end = found.span()
            if not any(taken[start:end]) and _whole(folded, start, end):
                spans.append((starts[start], ends[end - 1]))
                taken[start:end] = b"\x01" * (end - start)
    return _merged(spans)


@lru_cache(maxsize=1024)
def _wanted(query: str) -> tuple[str, ...]:
    """The query's distinct terms, longest first (北京大学 before 北京)."""
    return tuple(sorted(set(terms(query)), key=len, reverse=True))


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """In order and not overlapping: two matches within one converted phrase are one span."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _whole(text: str, start: int, end: int) -> bool:
    """Latin terms match whole words only (python, not the middle of pythonic); CJK anywhere."""
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    latin = text[start].isascii() and text[start].isalnum()
    return not latin or not (before.isascii() and before.isalnum()) and not (after.isascii() and after.isalnum())
