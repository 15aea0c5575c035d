"""Filters: Where and its SQL, filtered dense search against brute force, filters end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import semsearch
from semsearch.cli import app
from semsearch.documents.chunking import Chunk
from semsearch.documents.prepare import Document
from semsearch.errors import InvalidOptionError
from semsearch.globs import glob_match, glob_regex
from semsearch.query import Where, parse_time
from semsearch.retrieval import search
from semsearch.storage.store import Store
from semsearch.storage.vectors import FaissIndex, normalize


def matches(pattern: str, path: str) -> bool:
    return bool(glob_match(glob_regex(pattern), path))


def test_globs_keep_star_within_a_folder_and_let_double_star_span_folders() -> None:
    assert matches("/d/*.md", "/d/a.md") and not matches("/d/*.md", "/d/x/a.md")
    assert matches("/d/**/*.md", "/d/a.md") and matches("/d/**/*.md", "/d/x/y/a.md")
    assert not matches("/d/**/*.md", "/e/a.md") and not matches("/d/**/*.md", "/d/a.mdx")
    assert matches("**/notes/*.txt", "/home/u/notes/a.txt") and matches("/d/**", "/d/x/y")
    assert matches("/d/[ab]?.txt", "/d/a1.txt") and not matches("/d/[!ab]?.txt", "/d/a1.txt")
    assert matches("/d/报告*.pdf", "/d/报告2024.pdf")


def test_where_validates_and_reads_mappings() -> None:
    where = Where.of({"path": "docs/", "type": ["pdf"], "modified_after": "2024-01-01"})
    assert where == Where(("docs/",), ("pdf",), datetime(2024, 1, 1).timestamp())
    assert Where("a").paths == ("a",) and Where.of(None) is None and Where().empty
    for bad in ({"colour": "red"}, {"type": "p.d.f"}, {"path": ""}, {"modified_after": "last week"}):
        with pytest.raises(InvalidOptionError):
            Where.of(bad)


def test_times_parse_as_dates_epochs_and_ages() -> None:
    now = datetime(2025, 6, 10, 12, 0)
    assert parse_time("7d", now) == datetime(2025, 6, 3, 12, 0).timestamp()
    assert parse_time("12h", now) == datetime(2025, 6, 10, 0, 0).timestamp()
    assert parse_time(1_700_000_000) == 1_700_000_000.0
    assert parse_time("826111344d", now) < -7e13  # before year 1: still a time to compare with
    assert parse_time("2024-05-01T09:30:00Z") == datetime.fromisoformat("2024-05-01T09:30:00+00:00").timestamp()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """1,500 chunks of random 16-d vectors in 300 documents, a fifth of them under /b/."""
    store = Store.open(tmp_path / "db", create=True)
    rng = np.random.default_rng(3)
    with store.transaction():
        for number in range(300):
            folder = "b" if number % 5 == 0 else "a"
            suffix = "pdf" if number % 3 == 0 else "md"
            document = Document(f"/{folder}/{number}.{suffix}", str(number), 1, float(number), "utf-8")
            chunks = [Chunk(f"c{i}", i, i + 1, 1, 1) for i in range(5)]
            store.put_document(document, chunks, rng.standard_normal((5, 16)).astype(np.float32))
    return store


def brute_force(store: Store, query: np.ndarray, allowed: np.ndarray, k: int) -> list[int]:
    ids, matrix = next(store.iter_vectors(16, allowed.tolist(), batch=100_000))
    scores = normalize(matrix) @ normalize(query[None])[0]
    return [int(ids[i]) for i in np.argsort(-scores, kind="stable")[:k]]


def vector_index(store: Store, kind: str) -> FaissIndex:
    ids, matrix = next(store.iter_vectors(16, batch=100_000))
    vectors = FaissIndex.empty(kind, 16, len(ids), use_gpu=False)
    if vectors.needs_training:
        vectors.train(matrix)
    vectors.add(ids, matrix)
    return vectors


def under_b(store: Store) -> search.Scope:
    documents, chunks, total = store.matching_documents(Where(paths=("/b/",)), "/")
    assert total == 300 and len(documents) == 60 and chunks == 300
    return search.Scope(documents, chunks)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
@pytest.mark.parametrize("exact_floats", [0, search.EXACT_FLOATS])
def test_filtered_dense_search_returns_k_of_the_allowed_chunks(
    store: Store, kind: str, exact_floats: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "EXACT_FLOATS", exact_floats)  # 0: over-fetch from the index
    vectors = vector_index(store, kind)
    scope = under_b(store)
    allowed = store.chunk_ids_in(scope.documents)
    queries = np.random.default_rng(4).standard_normal((6, 16)).astype(np.float32)
    found = search.dense_candidates(vectors, store, queries, 20, scope)
    for query, row in zip(queries, found, strict=True):
        assert len(row) == 20 and set(i for i, _ in row) <= set(allowed.tolist())
        if kind == "flat" or exact_floats:
            assert [i for i, _ in row] == brute_force(store, query, allowed, 20)
    few = search.Scope(scope.documents[:1], 5)  # fewer allowed than asked for: all of them, no more
    assert all(len(row) == 5 for row in search.dense_candidates(vectors, store, queries, 20, few))
    nothing = search.Scope([], 0)
    assert search.dense_candidates(vectors, store, queries, 20, nothing) == [[] for _ in queries]


def test_an_approximate_index_that_runs_dry_is_answered_exactly(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search, "EXACT_FLOATS", 0)
    vectors = vector_index(store, "flat")
    real = vectors.search
    # an index that never finds more than 30 neighbours, as IVF does when its probed lists are small
    monkeypatch.setattr(vectors, "search", lambda q, k: tuple(a[:, :30] for a in real(q, k)))
    scope = under_b(store)
    query = np.random.default_rng(5).standard_normal((1, 16)).astype(np.float32)
    (row,) = search.dense_candidates(vectors, store, query, 10, scope)
    assert [i for i, _ in row] == brute_force(store, query[0], store.chunk_ids_in(scope.documents), 10)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """Three folders of short documents in three formats, with known modification times."""
    root = tmp_path / "corpus"
    for folder, suffix, when in (("guide", "md", 1_600_000_000), ("notes", "txt", 1_650_000_000), ("old", "rst", 1e9)):
        (root / folder / "deep").mkdir(parents=True)
        for n in range(8):
            path = root / folder / ("deep" if n % 2 else "") / f"{folder}{n}.{suffix}"
            path.write_text(f"第{n}篇{folder}文档。熊猫喜欢吃竹子，每天要吃很多竹子。\n", encoding="utf-8")
            os.utime(path, (when + n, when + n))
    return root


@pytest.fixture
def index(tmp_path: Path, tiny_model: Path, corpus: Path) -> semsearch.Index:
    idx = semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu")
    idx.ingest([corpus])
    return idx


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_every_mode_filters_by_path_type_and_time_without_losing_hits(
    index: semsearch.Index, corpus: Path, mode: str
) -> None:
    cases = [  # (filter, what a source must look like, how many documents pass)
        (Where(paths=(str(corpus / "guide"),)), lambda p: "/guide/" in p, 8),
        (Where(paths=(str(corpus / "**" / "deep" / "*.txt"),)), lambda p: p.endswith(".txt") and "/deep/" in p, 4),
        (Where(types=("md", "rst")), lambda p: p.endswith((".md", ".rst")), 16),
        (Where(modified_after=1_650_000_000, modified_before=1_650_000_005), lambda p: "/notes/" in p, 6),
        (Where(paths=(str(corpus / "old"), str(corpus / "notes")), types=("txt",)), lambda p: "/notes/" in p, 8),
    ]
    for where, wanted, passing in cases:
        hits = index.search("熊猫吃竹子", k=6, mode=mode, where=where)
        assert len(hits) == min(6, passing), where
        assert all(wanted(h.source) for h in hits), where
        everything = index.search("熊猫吃竹子", k=50, mode=mode, where=where)
        assert len(everything) == passing, where
    assert index.search("熊猫", k=5, mode=mode, where={"path": str(corpus / "nowhere")}) == []


def test_relative_path_filters_follow_the_working_directory(
    index: semsearch.Index, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(corpus)
    hits = index.search("熊猫", k=20, where={"path": "guide/deep/*.md"})
    assert sorted(Path(h.source).name for h in hits) == ["guide1.md", "guide3.md", "guide5.md", "guide7.md"]
    assert all(h.source.startswith(str(corpus / "notes")) for h in index.search("熊猫", k=3, where={"path": "notes"}))


def test_query_command_filters(index: semsearch.Index, corpus: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["query", "熊猫", "--index", str(tmp_path / "kb"), "--json", "-k", "20"]
    result = runner.invoke(app, [*base, "--path", str(corpus / "**" / "*.md"), "--path", str(corpus / "old")])
    assert result.exit_code == 0, result.output
    sources = [r["source"] for r in json.loads(result.stdout)["results"]]
    assert len(sources) == 16 and all(s.endswith((".md", ".rst")) for s in sources)
    result = runner.invoke(app, [*base, "--type", "txt", "--modified-before", "2022-04-25"])
    sources = [r["source"] for r in json.loads(result.stdout)["results"]]
    assert result.exit_code == 0 and len(sources) == 8 and all(s.endswith(".txt") for s in sources)
    bad = runner.invoke(app, [*base, "--modified-after", "yesterday-ish"])
    assert bad.exit_code == 1 and "Not a time" in bad.stderr


def run_with_timeout(code: str, seconds: float = 30) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter, killed after ``seconds``: a regex that backtracks for
    minutes holds the GIL, so only another process can time it out."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=seconds)


def test_a_pattern_built_to_backtrack_is_matched_in_linear_time() -> None:
    done = run_with_timeout(
        "from semsearch.globs import glob_match, glob_regex\n"
        "deep = '/' + '/'.join(['a'] * 60) + '/yyy'\n"
        "for pattern in ['/' + '**/' * 150 + 'zzz', '/' + 'a/**/' * 40 + 'zzz', '/' + '*a' * 60 + '*b']:\n"
        "    assert not glob_match(glob_regex(pattern), deep)\n"
        "print('ok')\n"
    )
    assert done.stdout.strip() == "ok", done.stderr
    assert glob_regex("/d/**/**/**/*.md") == glob_regex("/d/**/*.md")  # repeated ** are one


def test_invalid_or_oversized_path_patterns_are_the_users_error() -> None:
    with pytest.raises(InvalidOptionError, match="reversed"):
        Where(paths=("/d/[z-a].txt",))
    with pytest.raises(InvalidOptionError, match="at most 1000 characters"):
        Where(paths=("/" + "a" * 1000,))
    with pytest.raises(InvalidOptionError, match="At most 64 path filters"):
        Where(paths=tuple(f"/d{n}/" for n in range(65)))
    assert matches("/d/[!-~]", "/d/x") and not matches("/d/[!-~]", "/d//")  # a class never matches '/'
    assert not matches("/d/[.-0]x", "/d//x") and matches("/d/[.-0]x", "/d/0x")


def test_the_cli_says_an_invalid_pattern_is_invalid_not_corrupt(tmp_path: Path, tiny_model: Path, docs: Path) -> None:
    runner = CliRunner()
    kb = str(tmp_path / "kb")
    assert runner.invoke(app, ["ingest", str(docs), "--index", kb, "--model", str(tiny_model)]).exit_code == 0
    bad = runner.invoke(app, ["query", "熊猫", "--index", kb, "--path", "[z-a]*", "--mode", "lexical"])
    assert bad.exit_code == 1 and "Invalid path pattern" in bad.output and "corrupt" not in bad.output.lower()
