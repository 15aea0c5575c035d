"""Lexical matching for Chinese and mixed text: the terms SQLite's FTS5 index holds and matches.

Text is folded first (``folding.fold``: NFKC, so full-width ＡＢＣ１２３ and half-width ABC123 are
one form, case-folded, and Traditional Chinese as Simplified, so 長城 is 长城 and 記憶體 is 内存),
then segmented by rjieba, the Rust port of jieba, with its built-in dictionary (no
download). ``cut_for_search`` gives each long word and its parts (北京大学 -> 北京, 大学, 北京大学), so
a query for 大学 finds 北京大学. Latin words and numbers stay whole (python, 3.12, c++). Terms that
are only punctuation or white space are dropped. The index stores the terms joined by spaces;
FTS5's tokenizer is told that the symbols jieba keeps inside a term are part of it.
"""

from __future__ import annotations

import re

from .folding import TERMS_VERSION, fold

__all__ = ["FTS_TOKENIZER", "TERMS_VERSION", "fold", "indexed", "match_expression", "terms"]

# FTS5 tokenizer for the space-joined terms: jieba keeps these symbols inside Latin terms
FTS_TOKENIZER = "unicode61 remove_diacritics 0 tokenchars '+#&._%-'"
_WORD = re.compile(r"\w")


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
