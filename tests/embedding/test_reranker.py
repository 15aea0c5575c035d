"""The hand-assembled cross-encoder against sentence-transformers' CrossEncoder, on tiny random
folders of the bge rerankers' two layouts (BERT and XLM-RoBERTa)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rerankers import build_oracle, build_reranker

from semsearch.embedding.reranker import Reranker
from semsearch.errors import ModelLoadError, UnsupportedModelError

PAIRS = [
    ("长城在哪里？", "長城位於中國北方，是古代的防禦工程。" * 6),
    ("python search", "the search model, python 3.12"),
    ("你好", "世界" * 400),  # over the limit: truncated longest first
    ("短", "很长的一段文字，" * 40),
    ("长城" * 300, "短的段落"),  # the query is the longer side
    ("什么是向量检索？", "向量检索把文本变成向量，再找最近的向量。"),
]
IDENTITY = "torch.nn.modules.linear.Identity"
TANH = "torch.nn.modules.activation.Tanh"


def reference(folder: Path, pairs: list[tuple[str, str]]) -> np.ndarray:
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(folder), device="cpu").predict(pairs, batch_size=4)


@pytest.mark.parametrize(
    ("layout", "activation", "where"),
    [
        ("bert", None, "config"),  # bge-reranker-base/large: Sigmoid by default
        ("xlmr", None, "config"),  # bge-reranker-v2-m3
        ("bert", IDENTITY, "config"),  # the raw logit, saved by sentence-transformers >= 4
        ("xlmr", TANH, "legacy"),  # saved by sentence-transformers < 4
    ],
)
def test_scores_equal_cross_encoder_predict(tmp_path: Path, layout: str, activation: str | None, where: str) -> None:
    folder = build_reranker(tmp_path / layout, layout, activation=activation, activation_in=where)
    ours = Reranker.load(str(folder), device="cpu").predict(PAIRS, max_batch_tokens=700)  # several batches
    expected = reference(folder, PAIRS)
    assert ours.dtype == np.float32 and ours.shape == (len(PAIRS),)
    assert np.abs(ours - expected).max() <= 1e-5
    assert np.ptp(ours) > 1e-3  # the pairs score differently: the comparison means something


def test_a_folder_saved_by_sentence_transformers_loads_alike(tmp_path: Path) -> None:
    from sentence_transformers import CrossEncoder

    plain = build_reranker(tmp_path / "plain", "xlmr", activation=IDENTITY)
    saved = tmp_path / "saved"
    model = CrossEncoder(str(plain), device="cpu", max_length=64)
    model.save(str(saved))  # modules.json, sentence_bert_config.json (max_seq_length 64)
    ours = Reranker.load(str(saved), device="cpu")
    assert ours.max_seq_length == 64
    assert np.abs(ours.predict(PAIRS) - reference(saved, PAIRS)).max() <= 1e-5


def test_score_ranks_passages_for_one_query(tmp_path: Path) -> None:
    reranker = Reranker.load(str(build_oracle(tmp_path / "oracle", "乒")), device="cpu")
    scores = reranker.score("问题", ["没有", "一段很长的文字乒", "乒", "乒乒乒 abc"])
    assert list(np.argsort(-scores)) == [3, 2, 1, 0]
    assert reranker.score("问题", []).shape == (0,)


def test_unusable_folders_fail_with_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a folder"):
        Reranker.load(str(tmp_path / "missing" / "x" / "y"))
    two = build_reranker(tmp_path / "two", "bert", labels=2)
    with pytest.raises(UnsupportedModelError, match="2 labels"):
        Reranker.load(str(two), device="cpu")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{")
    with pytest.raises(ModelLoadError):
        Reranker.load(str(tmp_path / "broken"), device="cpu")


def test_a_reranker_is_checked_without_a_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # what serve checks at start: a folder, or a hub id in the cache or known to the hub
    from semsearch.embedding.hub import check

    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    check(str(build_oracle(tmp_path / "oracle", "乒")))
    with pytest.raises(ModelLoadError, match="^Cannot load reranker .*: not a folder; pass --rerank PATH"):
        check(str(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache.*--rerank PATH"):
        check("semsearch-tests/not-cached")
    assert not (tmp_path / "hub").exists()  # nothing fetched
