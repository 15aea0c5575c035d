"""Lexical matching for Chinese and mixed text: the terms SQLite's FTS5 index holds and matches.

Text is folded first (NFKC, so full-width ＡＢＣ１２３ and half-width ABC123 are one form, then
case-folded), then segmented by rjieba, the Rust port of jieba, with its built-in dictionary (no
download). ``cut_for_search`` gives each long word and its parts (北京大学 -> 北京, 大学, 北京大学), so
a query for 大学 finds 北京大学. Latin words and numbers stay whole (python, 3.12, c++). Terms that
are only punctuation or white space are dropped. The index stores the terms joined by spaces;
FTS5's tokenizer is told that the symbols jieba keeps inside a term are part of it.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# FTS5 tokenizer for the space-joined terms: jieba keeps these symbols inside Latin terms
FTS_TOKENIZER = "unicode61 remove_diacritics 0 tokenchars '+#&._%-'"
_WORD = re.compile(r"\w")


def fold(text: str) -> str:
    """Full-width to half-width and compatibility forms (NFKC), then case-folded."""
    return unicodedata.normalize("NFKC", text).casefold()


def terms(text: str) -> list[str]:
    """The search terms of ``text``, in order, repeats kept (they count in BM25)."""
    import rjieba

    return [term for term in rjieba.cut_for_search(fold(text)) if _WORD.search(term)]


def indexed(text: str) -> str:
    """What the FTS5 index stores for ``text``: its terms joined by spaces."""
    return " ".join(terms(text))


def match_expression(query: str) -> str | None:
    """An FTS5 MATCH expression for any of the query's terms; None when it has none."""
    unique = list(dict.fromkeys(terms(query)))
    if not unique:
        return None
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in unique)


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
