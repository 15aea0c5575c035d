"""Vector structures: flat, IVF and HNSW, the automatic choice, and switching between them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import semsearch
import semsearch.storage.vectors as vectors_module
from semsearch.cli import app
from semsearch.errors import InvalidOptionError
from semsearch.storage.vectors import IVF_MIN, FaissIndex, choose, hnsw_ef_search

DIM = 32


def clustered(n: int, seed: int) -> np.ndarray:
    """Vectors around 40 centres, as embeddings of a corpus's topics are."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, DIM)).astype(np.float32)
    return centres[rng.integers(0, 40, n)] + 0.5 * rng.standard_normal((n, DIM)).astype(np.float32)


def built(kind: str, vectors: np.ndarray, ids: np.ndarray) -> FaissIndex:
    index = FaissIndex.empty(kind, DIM, len(ids), use_gpu=False)
    if index.needs_training:
        index.train(vectors[: index.training_size()])
    index.add(ids, vectors)
    return index


def recall_at_10(index: FaissIndex, exact: FaissIndex, queries: np.ndarray) -> float:
    _, found = index.search(queries, 10)
    _, truth = exact.search(queries, 10)
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)]))


def test_auto_is_exact_while_fast_then_ivf() -> None:
    assert choose("auto", 1000, 1792, gpu=False) == "flat"
    assert choose("auto", 100_000, 1792, gpu=False) == "ivf"
    assert choose("auto", 100_000, 1792, gpu=True) == "flat"
    assert choose("auto", 3_000_000, 1792, gpu=True) == "ivf"
    assert choose("hnsw", 10, 1792, gpu=True) == "hnsw"  # asked for: kept
    assert choose("ivf", IVF_MIN - 1, 1792, gpu=True) == "flat"  # too few to train lists
    with pytest.raises(InvalidOptionError, match="Unknown index type"):
        choose("annoy", 10, 8, gpu=False)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_structures_reach_recall_095_and_honour_removal(kind: str, tmp_path: Path) -> None:
    data, queries = clustered(4000, seed=1), clustered(200, seed=2)
    ids = np.random.default_rng(3).choice(10**9, size=len(data), replace=False).astype(np.int64)
    exact, approximate = built("flat", data, ids), built(kind, data, ids)
    assert approximate.structure == kind and len(approximate) == len(data)
    assert recall_at_10(approximate, exact, queries) >= 0.95
    gone = ids[:500]
    assert approximate.remove(gone) == 500 and exact.remove(gone) == 500
    assert len(approximate) == len(data) - 500
    assert not np.isin(approximate.search(data[:500], 10)[1], gone).any()
    assert set(approximate.ids().tolist()) == set(ids[500:].tolist())
    assert recall_at_10(approximate, exact, queries) >= 0.95
    loaded = FaissIndex.load(approximate.save(tmp_path, (7, "0123456789abcdef")), DIM, use_gpu=False)
    assert loaded.structure == kind
    # HNSW keeps removed vectors in the file (faiss cannot delete from it); the owner masks them again
    loaded.remove(np.setdiff1d(loaded.ids(), ids[500:]))
    assert set(loaded.ids().tolist()) == set(ids[500:].tolist())


class StandInGpu:
    """faiss's GPU calls, answered by CPU copies: exercises semsearch's side of the GPU path
    (position-to-id mapping, float16 above the limit, nprobe, copies renewed after changes)
    where no GPU is present. The real GPU path is checked by scripts/bench_search.py --device gpu."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import faiss

        self.copies: list[tuple[str, bool]] = []
        monkeypatch.setattr(vectors_module, "gpu_available", lambda: True)
        monkeypatch.setattr(faiss, "StandardGpuResources", lambda: object(), raising=False)
        monkeypatch.setattr(faiss, "index_cpu_to_gpu", self.copy, raising=False)

    def copy(self, resources: object, device: int, index: object, options: object) -> object:
        import faiss

        self.copies.append((type(index).__name__, bool(options.useFloat16)))  # type: ignore[attr-defined]
        return faiss.clone_index(index)


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_gpu_search_path_returns_the_cpu_answers(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = StandInGpu(monkeypatch)
    monkeypatch.setattr(vectors_module, "FLOAT16_FROM", 1000 * DIM)
    data, queries = clustered(2000, seed=6), clustered(50, seed=7)
    ids = np.random.default_rng(8).choice(10**9, size=len(data), replace=False).astype(np.int64)
    on_gpu, on_cpu = built(kind, data, ids), built(kind, data, ids)
    on_gpu.use_gpu = True
    assert on_gpu.device == "gpu" and on_cpu.device == "cpu"
    np.testing.assert_array_equal(on_gpu.search(queries, 10)[1], on_cpu.search(queries, 10)[1])
    assert gpu.copies == [("IndexFlatIP" if kind == "flat" else "IndexIVFFlat", True)]  # 2000 x 32 > the limit
    on_gpu.search(queries, 10)
    assert len(gpu.copies) == 1  # the copy is kept while nothing changes
    for index in (on_gpu, on_cpu):
        index.remove(ids[:100])
        index.add(np.array([7], dtype=np.int64), queries[:1])
    found = on_gpu.search(queries, 10)[1]
    assert len(gpu.copies) == 2 and found[0, 0] == 7 and not np.isin(found, ids[:100]).any()
    np.testing.assert_array_equal(found, on_cpu.search(queries, 10)[1])


def test_hnsw_search_breadth_grows_with_its_size() -> None:
    assert hnsw_ef_search(0) == hnsw_ef_search(100_000) == 128
    assert hnsw_ef_search(1_000_000) == 1000
    index = built("hnsw", clustered(300, seed=9), np.arange(300))
    assert index.describe() == "hnsw (M 32, efSearch 128)"


def test_hnsw_is_worn_once_a_quarter_is_removed() -> None:
    data = clustered(400, seed=4)
    index = built("hnsw", data, np.arange(400))
    index.remove(np.arange(90))
    assert not index.worn(len(index))
    index.remove(np.arange(90, 120))
    assert index.worn(len(index))


def test_ivf_is_worn_when_it_outgrows_its_lists() -> None:
    data = clustered(2000, seed=5)
    index = built("ivf", data[:1000], np.arange(1000))
    assert not index.worn(1000)
    assert index.worn(20_000)


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Limits scaled down so the sample documents count as a large index."""
    monkeypatch.setattr(vectors_module, "FLAT_MAX_CPU", 20 * 96)
    monkeypatch.setattr(vectors_module, "IVF_MIN", 10)


def test_auto_switches_to_ivf_as_the_index_grows(tmp_path: Path, tiny_model: Path, docs: Path, small_limits) -> None:
    idx = semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu")
    idx.ingest([docs / "science"])
    assert idx.info().index_type == "flat (exact)"
    idx.ingest([docs])
    assert idx.info().index_type.startswith("ivf")
    assert any("Vector index built as ivf" in note for note in idx.notes)
    reopened = semsearch.open_index(tmp_path / "kb", device="cpu")
    assert reopened.info().index_type.startswith("ivf")
    assert [h.chunk_id for h in reopened.search("大熊猫", k=3)] == [h.chunk_id for h in idx.search("大熊猫", k=3)]


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_asked_for_structure_serves_updates_and_removals(
    kind: str, tmp_path: Path, tiny_model: Path, docs: Path, small_limits
) -> None:
    idx = semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu", index_type=kind)
    idx.ingest([docs])
    assert idx.info().index_type.startswith(kind) and idx.manifest.index_type == kind
    removed = idx.search("大熊猫", k=1)[0].source
    idx.remove([removed])
    assert all(h.source != removed for h in idx.search("大熊猫", k=50))
    Path(removed).unlink()
    updated = docs / "tea.md"
    updated.write_text("# 茶\n\n普洱茶是云南的名茶，可以存放很多年。\n", encoding="utf-8")
    idx.ingest([docs])
    reopened = semsearch.open_index(tmp_path / "kb", device="cpu")
    live = set(reopened.handle.store.chunk_ids().tolist())
    for query in ["大熊猫", "普洱茶", "长城"]:
        hits = reopened.search(query, k=50)
        assert len(hits) == min(50, len(live))  # every hit a live chunk, none masked away short
        assert all(h.source != removed for h in hits) and {h.chunk_id for h in hits} <= live
    assert [h.text for h in reopened.search("x", k=50) if h.source == str(updated)] == [updated.read_text().strip()]
    assert all(c.ok for c in reopened.check())


def test_repair_with_another_type_rebuilds_without_embedding(tmp_path: Path, tiny_model: Path, docs: Path) -> None:
    idx = semsearch.open_index(tmp_path / "kb", model=str(tiny_model), device="cpu")
    idx.ingest([docs])
    before = {h.chunk_id for h in idx.search("茶", k=5)}
    hnsw = semsearch.open_index(tmp_path / "kb", device="cpu", index_type="hnsw")
    assert all(c.ok for c in hnsw.repair())
    assert hnsw.info().index_type.startswith("hnsw")
    # the same passages, give or take one: HNSW is approximate, and faiss builds it in threads
    assert len({h.chunk_id for h in hnsw.search("茶", k=5)} & before) >= 4
    back = semsearch.open_index(tmp_path / "kb", device="cpu", index_type="flat")
    back.repair()
    assert back.info().index_type == "flat (exact)"


def test_cli_index_type_is_kept_and_checked(tmp_path: Path, tiny_model: Path, docs: Path) -> None:
    runner = CliRunner()
    kb = str(tmp_path / "kb")
    result = runner.invoke(
        app, ["ingest", str(docs), "--index", kb, "--model", str(tiny_model), "--index-type", "hnsw"]
    )
    assert result.exit_code == 0, result.output
    (docs / "new.txt").write_text("新的文件。", encoding="utf-8")
    assert runner.invoke(app, ["ingest", str(docs), "--index", kb]).exit_code == 0
    info = json.loads(runner.invoke(app, ["info", "--index", kb, "--json"]).output)
    assert info["index_type"].startswith("hnsw")
    bad = runner.invoke(app, ["ingest", str(docs), "--index", kb, "--index-type", "annoy"])
    assert bad.exit_code == 2  # a usage error, caught by the option's choices
    assert "'annoy' is not one of 'auto', 'flat', 'ivf', 'hnsw'" in bad.output
