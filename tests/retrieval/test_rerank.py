"""Reranking end to end: an oracle cross-encoder (it scores by the share of a marker character,
which only the relevant passages hold) turns poor first-stage rankings into perfect ones, in
every mode, with filters, context, depth and min_score, through the API, the CLI and eval."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from children import child_environment
from conftest import ORACLE_MARKER

import semsearch
from semsearch import ChunkSettings

M = ORACLE_MARKER
DOCS = {
    "apples.md": "苹果苹果苹果。苹果是水果，苹果很好吃。",
    "more/apples.md": "苹果和香蕉。苹果，苹果。",
    "fruit.md": "水果店里有香蕉和橙子，也有苹果。",
    # the relevant one: the query's word once, in a long passage the first stage ranks last
    "answer.md": f"这一段很长，讲了很多别的事情，只在最后提到苹果一次，还有{M}{M}{M}。",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    root = tmp_path_factory.mktemp("rerank")
    for name, text in DOCS.items():
        (root / "docs" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "docs" / name).write_text(text, encoding="utf-8")
    with semsearch.open_index(root / "kb", model=str(tiny_model), device="cpu") as index:
        index.ingest([root / "docs"])
    return root


@pytest.fixture
def index(corpus: Path):
    with semsearch.open_index(corpus / "kb", device="cpu", create=False) as opened:
        yield opened


def sources(hits) -> list[str]:
    return [Path(hit.source).name if "more" not in hit.source else "more/" + Path(hit.source).name for hit in hits]


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_an_oracle_reranker_puts_the_relevant_passage_first(index, oracle_reranker: Path, mode: str) -> None:
    plain = index.search("苹果", k=4, mode=mode)
    reranked = index.search("苹果", k=4, mode=mode, rerank=str(oracle_reranker))
    if mode == "lexical":
        assert sources(plain)[-1] == "answer.md"  # the first stage ranks it last
    assert sources(reranked)[0] == "answer.md"
    assert all(hit.reranked for hit in reranked) and not any(hit.reranked for hit in plain)
    first_stage = {hit.chunk_id: hit.score for hit in plain}
    assert {hit.chunk_id: hit.first_score for hit in reranked} == pytest.approx(first_stage)
    assert [hit.score for hit in reranked] == sorted((hit.score for hit in reranked), reverse=True)
    assert [hit.rank for hit in reranked] == [1, 2, 3, 4]


def test_only_the_first_depth_candidates_are_rescored(index, oracle_reranker: Path) -> None:
    plain = index.search("苹果", k=2, mode="lexical")
    shallow = index.search("苹果", k=2, mode="lexical", rerank=str(oracle_reranker), rerank_depth=2)
    assert {h.chunk_id for h in shallow} == {h.chunk_id for h in plain}  # answer.md was beyond the depth
    assert "answer.md" not in sources(shallow)
    deep = index.search("苹果", k=1, mode="lexical", rerank=str(oracle_reranker), rerank_depth=4)
    assert sources(deep) == ["answer.md"]


def test_filters_narrow_before_reranking_and_min_score_is_the_rerankers(index, oracle_reranker: Path) -> None:
    rerank = str(oracle_reranker)
    inside = index.search("苹果", k=4, mode="hybrid", rerank=rerank, where={"paths": ["**/more/*"]})
    assert sources(inside) == ["more/apples.md"]
    kept = index.search("苹果", k=4, mode="lexical", rerank=rerank, min_score=0.6)  # 0.5: no marker
    assert sources(kept) == ["answer.md"]


def test_rerank_true_names_the_default_model(index) -> None:
    from semsearch.query import DEFAULT_RERANKER, Query

    assert Query("q", rerank=True).rerank == DEFAULT_RERANKER
    assert Query("q", rerank=False).rerank is None
    with pytest.raises(semsearch.InvalidOptionError):
        Query("q", rerank=" ")


def test_hits_are_reranked_first_then_widened(tmp_path: Path, tiny_model: Path, oracle_reranker: Path) -> None:
    lines = [f"第{n}行讲苹果和别的水果。" for n in range(12)]
    lines[6] = f"第6行只有{M}{M}{M}{M}和苹果。"
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "long.md").write_text("\n".join(lines), encoding="utf-8")
    chunking = ChunkSettings(chunk_tokens=16, overlap_tokens=0)
    with semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu", chunking=chunking) as index:
        index.ingest([tmp_path / "docs"])
        alone = index.search("苹果", k=1, mode="lexical", rerank=str(oracle_reranker))
        widened = index.search("苹果", k=1, mode="lexical", rerank=str(oracle_reranker), context=1)
    assert M in alone[0].text and alone[0].reranked
    assert alone[0].text in widened[0].text and len(widened[0].chunk_ids) == 3
    assert widened[0].reranked and widened[0].score == alone[0].score


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = child_environment() | {"HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "semsearch", *map(str, args)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=environment, timeout=300)


def test_query_rerank_on_the_command_line(corpus: Path, oracle_reranker: Path) -> None:
    kb = corpus / "kb"
    result = run("query", "苹果", "--index", kb, "--mode", "lexical", "--rerank", oracle_reranker, "--json", cwd=corpus)
    hits = json.loads(result.stdout)["results"]
    assert Path(hits[0]["source"]).name == "answer.md" and hits[0]["reranked"] is True
    assert hits[0]["first_score"] is not None
    text = run("query", "苹果", "--index", corpus / "kb", "--rerank", oracle_reranker, cwd=corpus).stdout
    assert "(first stage " in text


def test_rerank_alone_means_the_default_model(corpus: Path) -> None:
    # no hub here: the default model cannot load, and says which it tried, in one line
    result = run("query", "苹果", "--index", corpus / "kb", "--rerank", "--json", cwd=corpus)
    assert result.returncode == 1
    assert "BAAI/bge-reranker-v2-m3" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    # HF_HUB_OFFLINE=1 (run sets it): the hub is not asked, so the model is said not to be cached;
    # and the advice is the reranker's option, not the embedding model's
    assert "not in the local Hugging Face cache" in result.stderr and "cannot be reached" not in result.stderr
    assert "--rerank PATH" in result.stderr and "--rerank-model" in result.stderr
    assert "--model " not in result.stderr


def test_a_reranker_that_cannot_load_fails_before_the_embedding_model_loads(
    corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from semsearch.cli import app
    from semsearch.embedding.encoder import Encoder

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the embedding model was loaded before the reranker")

    monkeypatch.setattr(Encoder, "load", refuse)
    missing = str(corpus / "no-such-reranker")
    arguments = ["query", "苹果", "--index", str(corpus / "kb"), "--no-server", "--device", "cpu", "--rerank", missing]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 1 and result.stderr.startswith(f"Error: Cannot load reranker '{missing}': not a folder")
    assert "pass --rerank PATH" in result.stderr and "AssertionError" not in result.stderr
