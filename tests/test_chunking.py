"""Chunking: sentence boundaries, token limits, exact offsets, full coverage."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semsearch.chunking import chunk_text, split_sentences


def char_spans(texts: list[str]) -> list[list[tuple[int, int]]]:
    """A stand-in tokenizer: every non-space character is one token."""
    return [[(i, i + 1) for i, c in enumerate(t) if not c.isspace()] for t in texts]


def check_invariants(text: str, chunks, spans_of, limit: int) -> None:
    covered = [False] * len(text)
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.text == chunk.text.strip() and chunk.text
        assert chunk.line == text.count("\n", 0, chunk.start) + 1
        assert chunk.tokens == len(spans_of([chunk.text])[0]) <= limit
        for i in range(chunk.start, chunk.end):
            covered[i] = True
    missing = [i for i, c in enumerate(text) if not c.isspace() and not covered[i]]
    assert not missing, f"characters not in any chunk: {missing[:10]}"
    starts = [c.start for c in chunks]
    assert starts == sorted(starts)


CHINESE = (
    "大熊猫是中国特有的物种。它们主要生活在四川、陕西和甘肃的山区！你知道吗？"
    "大熊猫每天要吃十几公斤竹子；它们的消化系统其实更像食肉动物……"
    "“保护大熊猫”已经成为全球共识。\n\n第二段从这里开始。"
)
ENGLISH = (
    "Giant pandas live in the mountains of central China. They eat bamboo! Do they hibernate? "
    "No, they do not. Python 3.12 was released in 2023; e.g. version numbers keep their dots.\n"
    "A new line starts a new sentence"
)
MIXED = "semsearch 支持中文和 English 混合文本。It splits at 句号 and at full stops. 最后一句！"


def test_split_sentences_chinese() -> None:
    sentences = [CHINESE[s:e] for s, e in split_sentences(CHINESE)]
    assert sentences[:3] == ["大熊猫是中国特有的物种。", "它们主要生活在四川、陕西和甘肃的山区！", "你知道吗？"]
    assert "“保护大熊猫”已经成为全球共识。" in sentences
    assert sentences[-1] == "第二段从这里开始。"


def test_split_sentences_english_keeps_decimal_points() -> None:
    sentences = [ENGLISH[s:e] for s, e in split_sentences(ENGLISH)]
    assert "Python 3.12 was released in 2023;" in sentences
    assert sentences[-1] == "A new line starts a new sentence"
    assert "They eat bamboo!" in sentences


@pytest.mark.parametrize("text", [CHINESE, ENGLISH, MIXED, CHINESE + "\n" + ENGLISH + MIXED * 5])
@pytest.mark.parametrize("size,overlap", [(8, 0), (20, 5), (64, 16), (1000, 0)])
def test_invariants_with_char_tokens(text: str, size: int, overlap: int) -> None:
    chunks = chunk_text(text, char_spans, size, overlap)
    check_invariants(text, chunks, char_spans, size)


@pytest.mark.parametrize("text", [CHINESE * 4, ENGLISH * 4, MIXED * 10])
def test_invariants_with_the_model_tokenizer(tiny_encoder, text: str) -> None:
    spans_of = tiny_encoder.token_spans
    chunks = chunk_text(text, spans_of, 24, 6, max_tokens=24)
    check_invariants(text, chunks, spans_of, 24)
    assert len(chunks) > 1


def test_long_run_without_punctuation_is_split(tiny_encoder) -> None:
    text = "无标点的长文本" * 300  # 2,100 characters, no sentence end
    chunks = chunk_text(text, tiny_encoder.token_spans, 100, 10, max_tokens=tiny_encoder.max_text_tokens)
    check_invariants(text, chunks, tiny_encoder.token_spans, 100)
    assert len(chunks) == 21


def test_nothing_over_the_model_limit(tiny_encoder) -> None:
    rng = random.Random(7)
    words = ["语义", "搜索", "semsearch", "FAISS", "。", "！", " ", "\n", "2023年", "xiaobu-embedding-v2", "，"]
    text = "".join(rng.choice(words) for _ in range(5000))
    limit = tiny_encoder.max_text_tokens
    chunks = chunk_text(text, tiny_encoder.token_spans, limit, 32, max_tokens=limit)
    check_invariants(text, chunks, tiny_encoder.token_spans, limit)


def test_overlap_repeats_trailing_sentences() -> None:
    text = "一二三。四五六。七八九。十十十。"
    chunks = chunk_text(text, char_spans, 8, 4)
    assert [c.text for c in chunks] == ["一二三。四五六。", "四五六。七八九。", "七八九。十十十。"]


def test_no_overlap_means_disjoint_chunks() -> None:
    chunks = chunk_text(CHINESE * 3, char_spans, 30, 0)
    assert all(a.end <= b.start for a, b in pairwise(chunks))


def test_line_numbers() -> None:
    text = "第一行。\n第二行。\n\n第四行。"
    chunks = chunk_text(text, char_spans, 4, 0)
    assert [(c.text, c.line) for c in chunks] == [("第一行。", 1), ("第二行。", 2), ("第四行。", 4)]


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t "])
def test_blank_text_has_no_chunks(text: str) -> None:
    assert chunk_text(text, char_spans, 10, 2) == []


@pytest.mark.parametrize("size,overlap", [(0, 0), (10, 10), (10, -1)])
def test_bad_settings(size: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        chunk_text("abc", char_spans, size, overlap)


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("甲乙丙丁ab c。！？.;\n…”")), max_size=300),
    size=st.integers(1, 40),
    overlap=st.integers(0, 39),
)
def test_invariants_hold_for_any_text(text: str, size: int, overlap: int) -> None:
    overlap = min(overlap, size - 1)
    check_invariants(text, chunk_text(text, char_spans, size, overlap), char_spans, size)
