"""Lexical terms: folding (full-width, case, Traditional Chinese), segmentation, Latin words, highlights."""

from __future__ import annotations

from semsearch.documents.folding import aligned
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


def test_fold_makes_traditional_chinese_simplified_phrase_by_phrase() -> None:
    assert fold("長城") == fold("长城") == "长城"
    assert fold("記憶體") == fold("内存") == "内存"  # Taiwan phrases, not only characters
    assert fold("軟體") == "软件" and fold("滑鼠") == "鼠标"
    assert fold("北京大学的软件") == "北京大学的软件"  # Simplified passes through


def test_terms_of_traditional_and_simplified_text_are_the_same() -> None:
    assert terms("萬里長城的記憶體") == terms("万里长城的内存")
    assert match_expression("長城") == match_expression("长城") == '"长城"'


def test_aligned_maps_each_folded_character_back_to_the_original() -> None:
    text = "ＡＢ記憶體軟體長城"
    folded, starts, ends = aligned(text)
    assert folded == fold(text) == "ab内存软件长城"
    assert [text[s:e] for s, e in zip(starts, ends, strict=True)] == [
        "Ａ", "Ｂ", "記憶體", "記憶體", "軟", "體", "長", "城",
    ]  # fmt: skip
    assert aligned("") == ("", [], [])


def test_highlights_point_at_the_original_characters_of_a_converted_phrase() -> None:
    text = "電腦的記憶體不夠，軟體很慢；長城很長。"
    spans = highlights(text, "内存 软件 长城")
    assert [text[s:e] for s, e in spans] == ["記憶體", "軟體", "長城"]
    back = "电脑的内存不够，软件很慢"
    assert [back[s:e] for s, e in highlights(back, "記憶體 軟體")] == ["内存", "软件"]
    twice = "記憶體記憶體"  # two phrases side by side, nothing in common with their Simplified forms
    assert highlights(twice, "内存") == [(0, 3), (3, 6)]
