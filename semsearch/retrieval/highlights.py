"""Where a query's terms occur in a passage: the spans a hit highlights."""

from __future__ import annotations

import re
from functools import lru_cache

from ..documents.terms import fold, terms


def highlights(text: str, query: str) -> list[tuple[int, int]]:
    """Character spans of ``text`` where the query's terms occur, in order, not overlapping.

    Matching is on folded text; NFKC can change a string's length, so the text is folded one
    character for one (each character to the first character of its fold), which keeps every
    span's offsets those of the original. Linear in the text, at C speed: the characters'
    folds are looked up once each and applied with ``str.translate``.
    """
    wanted = _wanted(query)
    if not wanted:
        return []
    folded = _fold_each(text)
    spans: list[tuple[int, int]] = []
    taken = bytearray(len(text))
    for term in wanted:
        if len(term) > len(folded):
            continue
        for found in re.finditer(re.escape(term), folded):
            start, end = found.span()
            if not any(taken[start:end]) and _whole(folded, start, end):
                spans.append((start, end))
                taken[start:end] = b"\x01" * (end - start)
    return sorted(spans)


@lru_cache(maxsize=1024)
def _wanted(query: str) -> tuple[str, ...]:
    """The query's distinct terms, longest first (北京大学 before 北京)."""
    return tuple(sorted(set(terms(query)), key=len, reverse=True))


_FOLDED: dict[str, str] = {}  # a character -> the first character of its fold (all seen so far)


def _fold_each(text: str) -> str:
    """``text`` folded character by character, one character for one."""
    table: dict[int, str] = {}
    for char in set(text):
        mapped = _FOLDED.get(char)
        if mapped is None:
            mapped = _FOLDED[char] = fold(char)[:1] or char
        if mapped != char:
            table[ord(char)] = mapped
    return text.translate(table) if table else text


def _whole(text: str, start: int, end: int) -> bool:
    """Latin terms match whole words only (python, not the middle of pythonic); CJK anywhere."""
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    latin = text[start].isascii() and text[start].isalnum()
    return not latin or not (before.isascii() and before.isalnum()) and not (after.isascii() and after.isalnum())
