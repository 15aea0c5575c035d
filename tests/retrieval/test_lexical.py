"""Lexical terms: folding, Chinese segmentation, Latin words and numbers, highlights."""

from __future__ import annotations

from semsearch.documents.terms import fold, indexed, match_expression, terms
from semsearch.retrieval.highlights import highlights


def test_fold_makes_full_width_half_width_and_lower_case() -> None:
    assert fold("ＡＢＣ１２３，Python") == "abc123,python"


def test_terms_segment_chinese_with_the_parts_of_long_words() -> None:
    found = terms("北京大学的学生")
    assert {"北京", "大学", "北京大学", "学生"} <= set(found) and "的" in found


def test_terms_keep_latin_words_and_numbers_whole_and_drop_punctuation() -> None:
    assert terms("Python 3.12 和 C++，还有 c#！") == ["python", "3.12", "和", "c++", "还有", "c#"]
    assert terms("，。！？   ...") == []


def test_indexed_and_match_expression() -> None:
    assert indexed("ＡＩ模型") == "ai 模型"
    assert match_expression("熊猫 熊猫 吃") == '"熊猫" OR "吃"'
    assert match_expression("？！") is None
    assert match_expression('say "hi"') == '"say" OR "hi"'


def test_highlights_mark_query_terms_in_the_original_text() -> None:
    text = "北京大学有Ｐｙｔｈｏｎ课程，pythonic 不算。"
    spans = highlights(text, "北京大学 python")
    assert [text[s:e] for s, e in spans] == ["北京大学", "Ｐｙｔｈｏｎ"]  # whole words only for Latin terms
    assert highlights(text, "？") == []
