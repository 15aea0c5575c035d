"""The evaluation harness: reading BEIR folders, mapping chunk hits to documents, scoring, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SHARED
from typer.testing import CliRunner

import semsearch
from semsearch.cli import app
from semsearch.evaluation import Dataset, _run_queries, evaluate, load_beir, subset, write_corpus
from semsearch.results import Hit

CORPUS = {
    "d1": ("大熊猫", "大熊猫生活在中国四川的山林里，以竹子为食。"),
    "d2": ("长江", "长江是中国最长的河流，发源于青藏高原。"),
    "d3": ("", "龙井茶产于杭州西湖一带，是绿茶的一种。"),
    "d/4": ("Python", "Python 3.12 was released in October 2023."),
}


def write_beir(folder: Path, queries: dict[str, str], qrels: list[str], corpus=CORPUS) -> Path:
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as out:
        for doc_id, (title, text) in corpus.items():
            out.write(json.dumps({"_id": doc_id, "title": title, "text": text}, ensure_ascii=False) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as out:
        for query_id, text in queries.items():
            out.write(json.dumps({"_id": query_id, "text": text}, ensure_ascii=False) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(qrels), encoding="utf-8")
    return folder


@pytest.fixture
def self_retrieval(tmp_path: Path) -> Path:
    """Each query is a document's exact text: any working encoder ranks that document first."""
    queries = {f"q{i}": f"{title}\n\n{text}" if title else text for i, (title, text) in enumerate(CORPUS.values())}
    qrels = [f"q{i}\t{doc_id}\t1\n" for i, doc_id in enumerate(CORPUS)]
    return write_beir(tmp_path / "beir", queries, qrels)


def test_load_beir_reads_the_three_files_and_keeps_judged_queries(tmp_path: Path) -> None:
    folder = write_beir(
        tmp_path / "beir",
        {"q1": "熊猫吃什么？", "q2": "长江有多长？", "q3": "没有判断的问题", "q4": "  "},
        ["q1\td1\t1\n", "q2\td2\t2\n", "q2\td1\t0\n", "q4\td3\t1\n", "q9\td3\t1\n"],
    )
    data = load_beir(folder)
    assert data.name == "beir" and data.corpus["d/4"] == CORPUS["d/4"]
    # unjudged, blank and unknown queries are left out; a 0 judgement is kept as non-relevant
    assert data.queries == {"q1": "熊猫吃什么？", "q2": "长江有多长？"}
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2, "d1": 0}}
    assert subset(data, 1).queries == {"q1": "熊猫吃什么？"} and subset(data, 1).corpus == data.corpus


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "queries.jsonl").unlink(), "queries.jsonl is missing"),
        (lambda f: (f / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\nnot json\n'), "jsonl:2: not JSON"),
        (lambda f: (f / "qrels" / "test.tsv").write_text("q1\td1\n"), r"test.tsv:1: expected query-id"),
        (lambda f: (f / "qrels" / "test.tsv").write_text("q7\td1\t1\n"), "judges none of the queries"),
    ],
)
def test_bad_datasets_are_one_clear_error(tmp_path: Path, damage, message: str) -> None:
    folder = write_beir(tmp_path / "beir", {"q1": "熊猫"}, ["q1\td1\t1\n"])
    damage(folder)
    with pytest.raises(semsearch.DatasetError, match=message):
        load_beir(folder)


def test_write_corpus_names_files_by_id_and_maps_them_back(tmp_path: Path) -> None:
    paths = write_corpus(Dataset("x", CORPUS, {}, {}), tmp_path / "corpus")
    assert sorted(paths.values()) == sorted(CORPUS)  # "d/4" is an id, not a path
    by_id = {doc_id: Path(path) for path, doc_id in paths.items()}
    assert by_id["d1"].read_text(encoding="utf-8") == "大熊猫\n\n" + CORPUS["d1"][1]
    assert by_id["d3"].read_text(encoding="utf-8") == CORPUS["d3"][1]  # no title: the text alone
    # an entry added in front and one dropped: the other files keep their names and contents
    changed = {"d0": ("新", "新的条目。"), **{k: v for k, v in CORPUS.items() if k != "d2"}}
    again = write_corpus(Dataset("x", changed, {}, {}), tmp_path / "corpus")
    assert {d: p for p, d in again.items() if d in CORPUS} == {d: str(p) for d, p in by_id.items() if d != "d2"}
    assert sorted(again.values()) == sorted(changed) and len(list((tmp_path / "corpus").iterdir())) == 4


class FakeIndex:
    """Answers each query with fixed chunk hits, to check how hits become a document ranking."""

    def __init__(self, hits: dict[str, list[tuple[str, float]]]) -> None:
        self.hits = hits

    def search(self, text: str, k: int, mode: str = "dense", rrf_k: int = 60, **reranking: object) -> list[Hit]:
        found = self.hits.get(text, [])[:k]
        return [Hit(rank, score, "", source, 1, 0, 0, rank) for rank, (source, score) in enumerate(found, 1)]


def test_chunk_hits_fold_into_documents_ranked_by_their_best_chunk() -> None:
    import ir_measures

    paths = {"/c/a.txt": "A", "/c/b.txt": "B", "/c/c.txt": "C"}
    data = Dataset("x", {}, {"q1": "one", "q2": "two"}, {"q1": {"B": 1}, "q2": {"C": 1}})
    index = FakeIndex(
        {
            "one": [("/c/a.txt", 0.9), ("/c/a.txt", 0.8), ("/c/b.txt", 0.7), ("/elsewhere.txt", 0.6)],
            "two": [("/c/c.txt", 0.5), ("/c/b.txt", 0.4), ("/c/c.txt", 0.3)],
        }
    )
    options = {"mode": "dense", "rrf_k": 60, "rerank": None, "rerank_depth": 50}
    run, latencies = _run_queries(index, data, paths, options, progress=False)  # type: ignore[arg-type]
    assert [(d.query_id, d.doc_id, d.score) for d in run] == [
        ("q1", "A", 0.9),
        ("q1", "B", 0.7),
        ("q2", "C", 0.5),
        ("q2", "B", 0.4),
    ]
    assert len(latencies) == 2
    qrels = [ir_measures.Qrel(q, d, s) for q, docs in data.qrels.items() for d, s in docs.items()]
    scores = ir_measures.calc_aggregate([ir_measures.RR @ 10, ir_measures.R @ 10], qrels, run)
    assert scores[ir_measures.RR @ 10] == pytest.approx((1 / 2 + 1) / 2)  # B second for q1, C first for q2
    assert scores[ir_measures.R @ 10] == 1.0


def test_self_retrieval_scores_perfectly_and_a_kept_workdir_is_reused(
    self_retrieval: Path, tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modes = ["dense", "lexical", "hybrid"]
    reports = evaluate(load_beir(self_retrieval), str(tiny_model), modes=modes, device="cpu", workdir=tmp_path / "work")
    assert [r.mode for r in reports] == ["dense", "lexical", "hybrid"]
    for report in reports:  # a query that is a document's whole text finds it first in every mode
        assert report.metrics == {"nDCG@10": 1.0, "R@10": 1.0, "R@100": 1.0, "RR@10": 1.0}, report.mode
        assert report.documents == 4 and report.queries == 4
        assert report.model == str(tiny_model) and report.latency_ms["p50"] > 0
    embedded = []
    real = semsearch.Encoder.encode_tokenized
    monkeypatch.setattr(
        semsearch.Encoder, "encode_tokenized", lambda self, inputs, **kw: embedded.append(1) or real(self, inputs, **kw)
    )
    (again,) = evaluate(load_beir(self_retrieval), None, device="cpu", workdir=tmp_path / "work")
    assert again.metrics == reports[0].metrics and embedded == []  # the kept index already held the corpus
    with pytest.raises(semsearch.InvalidOptionError, match="Unknown search mode 'fuzzy'"):
        evaluate(load_beir(self_retrieval), None, modes=["fuzzy"], device="cpu", workdir=tmp_path / "work")


def test_cli_eval_prints_the_metrics_and_json(self_retrieval: Path, tiny_model: Path) -> None:
    runner = CliRunner()
    text = runner.invoke(app, ["eval", str(self_retrieval), "--model", str(tiny_model), "--device", "cpu"])
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert "4 documents, 4 queries" in lines[0] and lines[1].split() == [
        "mode",
        "nDCG@10",
        "R@10",
        "R@100",
        "RR@10",
        "p50",
        "ms",
        "p95",
        "ms",
    ]
    assert [line.split()[:2] for line in lines[2:]] == [[m, "1.0000"] for m in ("dense", "lexical", "hybrid")]
    options = ["--model", str(tiny_model), "--device", "cpu", "--limit", "2", "--mode", "lexical", "--json"]
    as_json = runner.invoke(app, ["eval", str(self_retrieval), *options])
    (report,) = json.loads(as_json.output)
    assert report["queries"] == 2 and report["mode"] == "lexical"
    assert set(report["metrics"]) == {"nDCG@10", "R@10", "R@100", "RR@10"}
    missing = runner.invoke(app, ["eval", str(self_retrieval.parent / "nothing")])
    assert missing.exit_code == 1 and missing.output.strip().startswith("Error: ")
    assert "corpus.jsonl is missing" in missing.output


@pytest.mark.skipif(not (SHARED / "cmrc2018-retrieval").exists(), reason="../shared/data is not here")
def test_the_cmrc2018_set_loads() -> None:
    data = load_beir(SHARED / "cmrc2018-retrieval")
    assert len(data.corpus) == 1104 and len(data.queries) == 3219
    assert all(len(judged) == 1 for judged in data.qrels.values())


def test_without_ir_measures_the_error_names_the_extra(
    self_retrieval: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ir_measures", None)  # what an uninstalled package looks like
    with pytest.raises(semsearch.MissingExtraError, match=r"pip install 'semsearch\[eval\]'"):
        evaluate(load_beir(self_retrieval), str(tiny_model), device="cpu")


def test_eval_measures_each_mode_with_and_without_the_reranker(
    tmp_path: Path, tiny_model: Path, oracle_reranker: Path
) -> None:
    pytest.importorskip("ir_measures")
    from conftest import ORACLE_MARKER as M

    corpus = {
        "a": ("", "苹果苹果苹果。苹果是水果。"),
        "b": ("", "苹果和香蕉，苹果。"),
        "answer": ("", f"这一段很长，讲了很多别的事情，只在最后提到苹果一次，还有{M}{M}{M}。"),
    }
    folder = write_beir(tmp_path / "beir", {"q": "苹果"}, ["q\tanswer\t1\n"], corpus=corpus)
    reports = evaluate(
        load_beir(folder), str(tiny_model), modes=("lexical",), device="cpu", rerank=str(oracle_reranker)
    )
    assert [(r.mode, r.reranker) for r in reports] == [("lexical", None), ("lexical", str(oracle_reranker))]
    plain, reranked = (r.metrics["RR@10"] for r in reports)
    assert plain == pytest.approx(1 / 3, abs=1e-4) and reranked == 1.0  # last of three, then first
    text = CliRunner().invoke(
        app, ["eval", str(folder), "--model", str(tiny_model), "--device", "cpu", "--mode", "lexical",
              "--rerank", str(oracle_reranker)]
    )  # fmt: skip
    assert text.exit_code == 0, text.output
    assert [line.split()[:4] for line in text.output.splitlines()[-2:]] == [
        ["lexical", "0.5000", "1.0000", "1.0000"],
        ["lexical", "+", "rerank", "1.0000"],
    ]
