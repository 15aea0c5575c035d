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

    Matching is on folded text; NFKC can change a string's length, so the spans are found
    character by character on a fold that keeps one character per original character.
    """
    wanted = sorted(set(terms(query)), key=len, reverse=True)  # longest first: 北京大学 before 北京
    if not wanted:
        return []
    folded = "".join(fold(char)[:1] or char for char in text)
    spans: list[tuple[int, int]] = []
    taken = [False] * len(text)
    for term in wanted:
        if len(term) > len(folded):
            continue
        for found in re.finditer(re.escape(term), folded):
            start, end = found.span()
            if not any(taken[start:end]) and _whole(folded, start, end):
                spans.append((start, end))
                taken[start:end] = [True] * (end - start)
    return sorted(spans)


def _whole(text: str, start: int, end: int) -> bool:
    """Latin terms match whole words only (python, not the middle of pythonic); CJK anywhere."""
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    latin = text[start].isascii() and text[start].isalnum()
    return not latin or not (before.isascii() and before.isalnum()) and not (after.isascii() and after.isalnum())
