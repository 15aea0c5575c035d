"""FaissIndex: FAISS cosine search checked against a numpy brute-force ranking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from semsearch.errors import IndexCorruptError
from semsearch.storage.vectors import FaissIndex, normalize, saved_files

TOKEN = "0123456789abcdef"

DIM = 32
N = 500
K = 10


def random_vectors(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def random_ids(n: int, seed: int) -> np.ndarray:
    # large, unordered and with gaps: nothing may assume ids are positions
    return np.random.default_rng(seed).choice(10**12, size=n, replace=False).astype(np.int64)


def brute_force(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, ids) by cosine similarity, computed in float64 numpy."""
    x = vectors.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = queries.astype(np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    similarity = q @ x.T
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(similarity, order, axis=1), ids[order]


def build(vectors: np.ndarray, ids: np.ndarray) -> FaissIndex:
    index = FaissIndex(DIM)
    index.add(ids, vectors)
    return index


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return random_vectors(N, seed=1), random_ids(N, seed=2), random_vectors(20, seed=3)


def test_search_matches_numpy_brute_force(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    vectors, ids, queries = data
    scores, found = build(vectors, ids).search(queries, K)
    expected_scores, expected_ids = brute_force(vectors, ids, queries, K)
    assert found.shape == scores.shape == (len(queries), K)
    assert found.dtype == np.int64
    np.testing.assert_array_equal(found, expected_ids)
    assert np.allclose(scores, expected_scores, atol=1e-5)


def test_search_scores_are_best_first(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    vectors, ids, queries = data
    scores, _ = build(vectors, ids).search(queries, K)
    assert np.all(np.diff(scores, axis=1) <= 1e-7)


def test_search_ignores_vector_and_query_length(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    vectors, ids, queries = data
    scale = np.random.default_rng(4).uniform(0.1, 50, size=(N, 1)).astype(np.float32)
    scores, found = build(vectors * scale, ids).search(queries * 7, K)
    expected_scores, expected_ids = brute_force(vectors, ids, queries, K)
    np.testing.assert_array_equal(found, expected_ids)
    assert np.allclose(scores, expected_scores, atol=1e-5)


def test_normalize_gives_unit_rows_and_keeps_zero_rows() -> None:
    vectors = random_vectors(5, seed=5) * np.array([[1], [10], [0.01], [0], [3]], dtype=np.float32)
    result = normalize(vectors.astype(np.float64))
    assert result.dtype == np.float32 and result.flags["C_CONTIGUOUS"]
    norms = np.linalg.norm(result, axis=1)
    assert np.allclose(norms[[0, 1, 2, 4]], 1.0, atol=1e-6)
    np.testing.assert_array_equal(result[3], np.zeros(DIM, dtype=np.float32))
    assert not np.isnan(result).any()


def test_remove_takes_ids_out_of_results(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    vectors, ids, queries = data
    index = build(vectors, ids)
    _, before = index.search(queries, K)
    gone = np.unique(before[:, :3])  # the best hits, so the removal must change results
    assert index.remove(gone) == len(gone)
    assert len(index) == N - len(gone)
    keep = ~np.isin(ids, gone)
    scores, found = index.search(queries, K)
    assert not np.isin(found, gone).any()
    expected_scores, expected_ids = brute_force(vectors[keep], ids[keep], queries, K)
    np.testing.assert_array_equal(found, expected_ids)
    assert np.allclose(scores, expected_scores, atol=1e-5)


def test_remove_of_nothing_or_unknown_ids_changes_nothing(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    vectors, ids, _ = data
    index = build(vectors, ids)
    assert index.remove(np.array([], dtype=np.int64)) == 0
    unknown = np.setdiff1d(np.arange(5, dtype=np.int64), ids)
    assert index.remove(unknown) == 0
    assert len(index) == N


def test_k_larger_than_index_returns_only_what_is_there() -> None:
    vectors, ids = random_vectors(7, seed=6), random_ids(7, seed=7)
    queries = random_vectors(3, seed=8)
    scores, found = build(vectors, ids).search(queries, 50)
    assert scores.shape == found.shape == (3, 7)
    assert (found >= 0).all()
    assert all(sorted(row) == sorted(ids.tolist()) for row in found.tolist())


def test_search_of_empty_index_returns_empty_arrays() -> None:
    scores, found = FaissIndex(DIM).search(random_vectors(4, seed=9), K)
    assert scores.shape == found.shape == (4, 0)
    assert scores.dtype == np.float32 and found.dtype == np.int64


def test_ids_returns_the_ids_present(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    vectors, ids, _ = data
    index = build(vectors, ids)
    assert sorted(index.ids().tolist()) == sorted(ids.tolist())
    index.remove(ids[:10])
    assert sorted(index.ids().tolist()) == sorted(ids[10:].tolist())
    assert FaissIndex(DIM).ids().size == 0


# -- files --------------------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path: Path, data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    vectors, ids, queries = data
    index = build(vectors, ids)
    path = index.save(tmp_path, (7, TOKEN))
    assert path == tmp_path / f"vectors-7-{TOKEN}.faiss"
    loaded = FaissIndex.load(path, DIM)
    assert len(loaded) == N
    for got, want in zip(loaded.search(queries, K), index.search(queries, K), strict=True):
        np.testing.assert_array_equal(got, want)
    assert sorted(loaded.ids().tolist()) == sorted(ids.tolist())


def test_saved_files_are_newest_first(tmp_path: Path) -> None:
    for generation in (3, 12):
        (tmp_path / f"vectors-{generation}-{TOKEN}.faiss").write_bytes(b"x")
    (tmp_path / "vectors-1.faiss").write_bytes(b"x")  # an earlier version's name: no token
    (tmp_path / "vectors-old.faiss").write_bytes(b"x")
    (tmp_path / "semsearch.db").write_bytes(b"x")
    assert saved_files(tmp_path) == [
        (tmp_path / f"vectors-12-{TOKEN}.faiss", (12, TOKEN)),
        (tmp_path / f"vectors-3-{TOKEN}.faiss", (3, TOKEN)),
        (tmp_path / "vectors-1.faiss", (1, "")),
    ]
    assert saved_files(tmp_path / "missing") == []


def test_saving_a_new_generation_removes_older_files(tmp_path: Path) -> None:
    index = build(random_vectors(5, seed=10), random_ids(5, seed=11))
    index.save(tmp_path, (1, TOKEN))
    index.save(tmp_path, (2, TOKEN))
    (tmp_path / "vectors-0.faiss").write_bytes(b"an earlier version's")
    (tmp_path / "semsearch.db").write_bytes(b"untouched")
    index.save(tmp_path, (3, TOKEN))
    assert saved_files(tmp_path) == [(tmp_path / f"vectors-3-{TOKEN}.faiss", (3, TOKEN))]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["semsearch.db", f"vectors-3-{TOKEN}.faiss"]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_load_of_damaged_file_raises_index_corrupt(tmp_path: Path, damage: str) -> None:
    path = build(random_vectors(20, seed=12), random_ids(20, seed=13)).save(tmp_path, (1, TOKEN))
    data = path.read_bytes()
    damaged = {"truncated": data[: len(data) // 2], "garbage": b"not a faiss index " * 20, "empty": b""}[damage]
    path.write_bytes(damaged)
    with pytest.raises(IndexCorruptError, match=f"vectors-1-{TOKEN}.faiss"):
        FaissIndex.load(path, DIM)


def test_load_with_wrong_dimension_raises_index_corrupt(tmp_path: Path) -> None:
    path = build(random_vectors(5, seed=14), random_ids(5, seed=15)).save(tmp_path, (1, TOKEN))
    with pytest.raises(IndexCorruptError, match=f"not a {DIM * 2}-d semsearch vector index.*semsearch repair"):
        FaissIndex.load(path, DIM * 2)
