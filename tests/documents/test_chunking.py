"""Chunking: sentence boundaries, token limits, exact offsets, full coverage."""

from __future__ import annotations

import random
import re
import time
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semsearch.documents.chunking import WINDOW, chunk_text, split_sentences, token_windows


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


# -- long sentences: tokenized in windows, linear time, bounded tokenizer calls ----------------

WORDS = ["语义", "搜索", "semsearch ", "FAISS，", "embedding ", "xiaobu-embedding-v2 ", "2023年", " ", "，"]
WORDS += ["unbelievably。", "Ünïcödé ", "naïve\u3000", "中", "𠀀", "a ", "ok!", "한국어 ", "ひらがな、", "\u200b"]


def mixed_text(length: int, seed: int = 3) -> str:
    """Chinese and English with no run of letters longer than 14 characters."""
    rng = random.Random(seed)
    return "".join(rng.choice(WORDS) for _ in range(length // 4))[:length]


@pytest.mark.parametrize("window", [32, 64, 301, WINDOW])
def test_token_windows_equal_one_call_with_the_model_tokenizer(tiny_encoder, window: int) -> None:
    text = mixed_text(20_000)
    windows = list(token_windows(text, 0, len(text), tiny_encoder.token_spans, window))
    assert [t for w in windows for t in w] == tiny_encoder.token_spans([text])[0]
    assert len(windows) >= len(text) // window


def test_small_window_gives_the_same_chunks_with_the_model_tokenizer(tiny_encoder) -> None:
    text = mixed_text(6000, seed=5)
    spans_of = tiny_encoder.token_spans
    chunks = chunk_text(text, spans_of, 24, 6, max_tokens=24, window=40)
    assert chunks == chunk_text(text, spans_of, 24, 6, max_tokens=24)
    check_invariants(text, chunks, spans_of, 24)


def wordpiece_spans(tokens: list[str]):
    """token_spans of a BERT WordPiece tokenizer over exactly ``tokens``."""
    from modelfactory import bert_tokenizer

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend = bert_tokenizer(specials + tokens).backend_tokenizer
    return lambda texts: [e.offsets for e in backend.encode_batch(texts, add_special_tokens=False)]


# "xiaobu" is xiao ##bu in context, but "bu" alone is b ##u: a cut inside a word changes counts
SUBWORDS = ["xiao", "##xiao", "##bu", "b", "##u", "。"]


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
def test_cuts_fall_between_words_so_each_chunk_counts_as_it_tokenizes_alone(size: int) -> None:
    spans_of = wordpiece_spans(SUBWORDS)
    text = "xiaobu xiaobu xiaobu xiaobu。xiaobu xiaobu"
    chunks = chunk_text(text, spans_of, size, 0)
    check_invariants(text, chunks, spans_of, size)
    if size >= 2:
        assert all(c.text.replace(" ", "").replace("。", "") in {"xiaobu" * n for n in range(4)} for c in chunks)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7])
def test_a_word_longer_than_a_chunk_is_cut_inside_and_its_tail_counted_alone(size: int) -> None:
    spans_of = wordpiece_spans(SUBWORDS)
    text = "xiaobu" * 9 + " xiaobu。" + "bu" * 7
    for chunks in (chunk_text(text, spans_of, size, 0), chunk_text(text, spans_of, 8, 0, max_tokens=size)):
        check_invariants(text, chunks, spans_of, size)


def test_200k_run_without_punctuation(tiny_encoder) -> None:
    text = "无标点的长文本连续不断" * 20_000  # 200,000 characters, one sentence
    spans_of = tiny_encoder.token_spans
    began = time.perf_counter()
    chunks = chunk_text(text, spans_of, 256, 32, max_tokens=tiny_encoder.max_text_tokens)
    assert time.perf_counter() - began < 10  # about 1 s; a quadratic cut takes minutes
    check_invariants(text, chunks, spans_of, 256)
    assert len(chunks) == -(-len(text) // 256)


def test_long_line_reaches_the_tokenizer_in_bounded_calls() -> None:
    text = "字" * 300_000 + " word" * 20_000  # one 400,000-character sentence
    sizes: list[int] = []

    def recording(texts: list[str]) -> list[list[tuple[int, int]]]:
        sizes.append(sum(map(len, texts)))
        return char_spans(texts)

    chunks = chunk_text(text, recording, 100, 10, window=1000)
    assert max(sizes) <= 262_144
    check_invariants(text, chunks, char_spans, 100)


def word_spans(texts: list[str]) -> list[list[tuple[int, int]]]:
    """A stand-in WordPiece: runs of letters in pieces of three, other characters alone."""
    return [
        [
            (m.start() + i, min(m.start() + i + 3, m.end()))
            for m in re.finditer(r"[a-z]+|\S", t)
            for i in range(0, len(m.group()), 3)
        ]
        for t in texts
    ]


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("甲乙abc ，\n")), max_size=400), window=st.integers(2, 60))
def test_token_windows_equal_one_call_for_any_text(text: str, window: int) -> None:
    longest = max((len(run) for run in re.findall("[a-z]+", text)), default=0)
    window = max(window, 2 * longest + 2)  # only words over half a window are cut
    windows = token_windows(text, 0, len(text), word_spans, window)
    assert [t for w in windows for t in w] == word_spans([text])[0]


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("甲乙丙丁ab c。！.\n")), max_size=400),
    size=st.integers(1, 30),
    overlap=st.integers(0, 29),
    window=st.integers(2, 40),
)
def test_invariants_hold_for_any_window(text: str, size: int, overlap: int, window: int) -> None:
    overlap = min(overlap, size - 1)
    chunks = chunk_text(text, char_spans, size, overlap, window=window)
    check_invariants(text, chunks, char_spans, size)
    assert chunks == chunk_text(text, char_spans, size, overlap)


def test_bad_window() -> None:
    with pytest.raises(ValueError):
        chunk_text("abc", char_spans, 10, 0, window=1)
