"""Query and document prompts, and the model families besides BERT (bge-m3's XLM-R, Qwen3-Embedding),
against sentence-transformers' ``encode_query``, ``encode_document`` and ``encode`` to 1e-5 in fp32."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from modelfactory import build_model
from modelfamilies import QWEN3_QUERY_PROMPT, build_qwen3, build_xlm_roberta

from semsearch.embedding.encoder import Encoder
from semsearch.embedding.folder import Prompts, max_seq_length
from semsearch.errors import UnsupportedModelError

# varied lengths in one call, so our token-budget batches and padding differ from the reference's
TEXTS = [
    "你是谁？",
    "我是一个智能助手，可以回答各种问题。" * 3,
    "Python 3.12 于2023年10月发布，带来了更好的错误信息。",
    "The quick brown fox jumps over the lazy dog.",
    "混合 mixed 文本 with English words 和中文标点！",
    "长" * 700,  # longer than the model's limit: truncated, by both
    "a",
    "",
    "   spaces around   ",
]
TOLERANCE = 1e-5
BGE_ZH_QUERY = "为这个句子生成表示以用于检索相关文章："


def assert_parity(folder: Path, texts: list[str] = TEXTS) -> Encoder:
    """Ours against sentence-transformers for queries, documents and plain ``encode``."""
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(str(folder), device="cpu")
    encoder = Encoder.load(str(folder), device="cpu")
    pairs = [
        (encoder.encode_query(texts, batch_size=4), reference.encode_query(texts)),
        (encoder.encode_document(texts, max_batch_tokens=300), reference.encode_document(texts)),
        (encoder.encode(texts), reference.encode(texts)),
    ]
    for ours, theirs in pairs:
        assert ours.dtype == np.float32 and ours.shape == theirs.shape == (len(texts), encoder.dimension)
        assert np.abs(ours - theirs).max() <= TOLERANCE
    return encoder


@pytest.fixture(scope="module")
def xlmr_model(models_dir: Path) -> Path:
    folder = models_dir / "tiny-bge-m3"
    return folder if (folder / "modules.json").exists() else build_xlm_roberta(folder)


@pytest.fixture(scope="module")
def qwen3_model(models_dir: Path) -> Path:
    folder = models_dir / "tiny-qwen3-embedding"
    return folder if (folder / "modules.json").exists() else build_qwen3(folder)


@pytest.mark.parametrize(
    ("name", "prompts", "default", "expected"),
    [
        ("bge-zh", {"query": BGE_ZH_QUERY}, None, Prompts(query=BGE_ZH_QUERY)),
        # sentence-transformers 6.2 always has a "document" prompt (empty unless saved), so
        # encode_document never reaches e5's "passage"
        ("e5", {"query": "query: ", "passage": "passage: "}, None, Prompts(query="query: ")),
        # the default prompt is encode's alone: encode_query reads the (empty) "query" prompt
        ("default-only", {"instruct": "指令："}, "instruct", Prompts(default="指令：")),
        (
            "all",
            {"query": "问：", "document": "文档：", "classification": "分类："},
            "classification",
            Prompts(default="分类：", query="问：", document="文档："),
        ),
    ],
)
def test_prompts_match_sentence_transformers(
    models_dir: Path, name: str, prompts: dict[str, str], default: str | None, expected: Prompts
) -> None:
    folder = build_model(models_dir / f"prompts-{name}", prompts=prompts, default_prompt_name=default, seed=7)
    encoder = assert_parity(folder)
    assert encoder.prompts == expected
    assert (encoder.info.query_prompt, encoder.info.document_prompt) == (expected.query, expected.document)
    if expected.query != expected.document:  # the prompt made a difference
        assert np.abs(encoder.encode_query(["你好"]) - encoder.encode_document(["你好"])).max() > 1e-3


def test_limits_leave_room_for_the_prompts(models_dir: Path) -> None:
    prompts = {"query": BGE_ZH_QUERY, "document": "文档："}
    encoder = Encoder.load(str(build_model(models_dir / "prompts-limits", prompts=prompts)), device="cpu")
    specials = encoder.max_seq_length - 2  # [CLS] and [SEP]
    assert encoder.max_query_tokens == specials - len(BGE_ZH_QUERY)  # one token per character here
    assert encoder.max_text_tokens == specials - 3
    # a chunk of max_text_tokens tokens is not truncated once the document prompt is before it
    chunk = "中" * encoder.max_text_tokens
    assert len(encoder.tokenize_documents([chunk])[0]) == encoder.max_seq_length


def test_pooling_without_the_prompt_is_refused(models_dir: Path) -> None:
    folder = build_model(models_dir / "prompts-excluded", prompts={"query": BGE_ZH_QUERY}, pooling="mean")
    config_file = folder / "1_Pooling" / "config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "include_prompt": False}))
    with pytest.raises(UnsupportedModelError, match="excludes the prompt"):
        Encoder.load(str(folder), device="cpu")


def test_xlm_roberta_cls_normalize_matches_sentence_transformers(xlmr_model: Path) -> None:
    encoder = assert_parity(xlmr_model)
    assert encoder.info.pooling == ["cls"] and encoder.info.normalize is True
    assert encoder.max_seq_length == 512 and encoder.spec.padding_side == "right"
    assert encoder.spec.pad_id == 1  # XLM-R's position ids count from it


def test_xlm_roberta_limit_stops_before_the_position_offset() -> None:
    from transformers import BertConfig, XLMRobertaConfig

    unlimited = SimpleNamespace(model_max_length=int(1e30))
    # no saved limit: sentence-transformers takes the 514 position embeddings, of which 512 are usable
    assert max_seq_length({}, unlimited, XLMRobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512
    # bge-m3: 8192 saved, 8194 position embeddings
    assert max_seq_length({"max_seq_length": 8192}, unlimited, XLMRobertaConfig(max_position_embeddings=8194)) == 8192
    assert max_seq_length({}, unlimited, BertConfig(max_position_embeddings=512)) == 512  # no offset in BERT


def test_qwen3_last_token_left_padding_matches_sentence_transformers(qwen3_model: Path) -> None:
    encoder = assert_parity(qwen3_model)
    assert encoder.info.pooling == ["lasttoken"] and encoder.info.normalize is True
    assert encoder.spec.padding_side == "left"
    assert encoder.prompts == Prompts(query=QWEN3_QUERY_PROMPT)
    assert "token_type_ids" not in encoder.spec.names  # a decoder takes none
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(qwen3_model))
    (inputs,) = encoder.tokenize(["你好"])
    assert inputs.ids[-1] == tokenizer.eos_token_id == tokenizer.pad_token_id == encoder.spec.pad_id  # EOS appended


def test_qwen3_does_not_depend_on_batch_composition(qwen3_model: Path) -> None:
    # left padding shifts every position of a short text; RoPE is relative, so only float noise
    # may differ between a text embedded alone and among longer ones
    encoder = Encoder.load(str(qwen3_model), device="cpu")
    together = encoder.encode_query(TEXTS, batch_size=len(TEXTS))
    assert encoder.last_padding > 0.5  # much of that batch was padding
    alone = np.concatenate([encoder.encode_query([text]) for text in TEXTS])
    assert np.abs(together - alone).max() <= TOLERANCE
