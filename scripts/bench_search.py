"""FAISS index types for semsearch's vectors: exact (flat), IVF and HNSW, side by side.

    python scripts/bench_search.py [--sizes 100000 1000000] [--dim 1792] [--queries 1000]
                                   [--device cpu|gpu]

Random unit vectors stand in for chunk embeddings; queries are perturbed copies of stored
vectors, so each has real near neighbours (uniform random queries make every index look good or
bad for the wrong reason). For each size and index type: build time, queries/s at batch 1 and 64,
recall@10 against the exact index, and memory (the serialised size). ``--device gpu`` runs the
flat and IVF indexes on the GPU (faiss with GPU support needed); HNSW is CPU-only in faiss.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def data(size: int, dim: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # a few hundred clusters, as topics in a corpus are, rather than uniform noise
    centres = unit(rng.standard_normal((256, dim), dtype=np.float32))
    vectors = unit(centres[rng.integers(0, 256, size)] + 0.6 * unit(rng.standard_normal((size, dim), dtype=np.float32)))
    picked = vectors[rng.integers(0, size, queries)]
    return vectors, unit(picked + 0.8 * unit(rng.standard_normal((queries, dim), dtype=np.float32)))


def build(kind: str, vectors: np.ndarray, gpu: bool):
    import faiss

    dim, size = vectors.shape[1], len(vectors)
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind.startswith("ivf"):
        nlist = int(4 * np.sqrt(size))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors[np.random.default_rng(1).choice(size, min(size, 64 * nlist), replace=False)])
    else:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
    if gpu and not kind.startswith("hnsw"):
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(vectors)
    return index


def memory_mb(index) -> float:
    import faiss

    if hasattr(faiss, "index_gpu_to_cpu") and type(index).__name__.startswith("Gpu"):
        index = faiss.index_gpu_to_cpu(index)
    return len(faiss.serialize_index(index)) / 1e6


def queries_per_second(index, queries: np.ndarray, batch: int) -> float:
    count = min(len(queries), 200 if batch == 1 else len(queries))
    started = time.perf_counter()
    for first in range(0, count, batch):
        index.search(queries[first : first + batch], 10)
    return count / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--dim", type=int, default=1792)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--kinds", nargs="+", default=["flat", "ivf-8", "ivf-32", "ivf-128", "hnsw-32", "hnsw-128"])
    args = parser.parse_args()
    import faiss

    gpu = args.device == "gpu"
    print(f"faiss {faiss.__version__}, {args.device}, dim {args.dim}, {faiss.omp_get_max_threads()} threads")
    print(f"{'size':>9} {'index':<9} {'build s':>8} {'q/s b=1':>9} {'q/s b=64':>9} {'recall@10':>9} {'MB':>8}")
    for size in args.sizes:
        vectors, queries = data(size, args.dim, args.queries)
        truth = None
        cache: dict[str, tuple[object, float]] = {}  # one IVF / HNSW build, searched at several settings
        for kind in args.kinds:
            base = kind.split("-")[0]
            if base not in cache:
                started = time.perf_counter()
                cache[base] = (build(kind, vectors, gpu), time.perf_counter() - started)
            index, built = cache[base]
            _tune(index, kind)
            _, found = index.search(queries, 10)
            if truth is None:
                truth = found  # the first kind is flat: exact
            recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)])
            print(
                f"{size:>9} {kind:<9} {built:>8.1f} {queries_per_second(index, queries, 1):>9.0f} "
                f"{queries_per_second(index, queries, 64):>9.0f} {recall:>9.3f} {memory_mb(index):>8.0f}"
            )
        cache.clear()
    return 0


def _tune(index, kind: str) -> None:
    import faiss

    if kind.startswith("ivf"):
        faiss.ParameterSpace().set_index_parameter(index, "nprobe", int(kind.split("-")[1]))
    elif kind.startswith("hnsw"):
        index.hnsw.efSearch = int(kind.split("-")[1])


if __name__ == "__main__":
    sys.exit(main())
