"""semsearch's vector structures side by side: exact (flat), IVF and HNSW.

    python scripts/bench_search.py [--sizes 100000 1000000] [--dim 1792] [--queries 1000]
                                   [--device cpu|gpu] [--kinds flat ivf hnsw]
                                   [--nprobe 16 ...] [--ef-search 128 ...]

Builds each structure through ``semsearch.storage.vectors.FaissIndex`` with the settings semsearch uses
(IVF: 4 sqrt(n) lists, nprobe 16; HNSW: M 32, efConstruction 80, efSearch max(128, n / 1000)),
so the figures are the library's. Random clustered unit vectors stand in for chunk embeddings; queries are perturbed
copies of stored vectors, so each has real near neighbours (uniform random queries make every
index look good or bad for the wrong reason). For each size and structure: build time, queries/s
at batch 1 and 64, recall@10 against exact search, memory (the saved file) and memory per
million vectors. ``--device gpu`` searches flat and IVF on the GPU (faiss with GPU support
needed; float16 storage above semsearch's FLOAT16_FROM); HNSW is CPU-only in faiss. --nprobe and
--ef-search search each built IVF or HNSW index again at other settings (semsearch's own: nprobe
16; efSearch 128 up to 128 000 vectors, then one per 1000), to show the recall / speed trade-off.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def data(size: int, dim: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # a few hundred clusters, as topics in a corpus are, rather than uniform noise
    centres = unit(rng.standard_normal((256, dim), dtype=np.float32))
    vectors = np.empty((size, dim), dtype=np.float32)
    for first in range(0, size, 50_000):  # in blocks: at 1 M x 1792 one temporary is 7 GB
        rows = min(50_000, size - first)
        noise = unit(rng.standard_normal((rows, dim), dtype=np.float32))
        vectors[first : first + rows] = unit(centres[rng.integers(0, 256, rows)] + 0.6 * noise)
    picked = vectors[rng.integers(0, size, queries)]
    return vectors, unit(picked + 0.8 * unit(rng.standard_normal((queries, dim), dtype=np.float32)))


def build(kind: str, vectors: np.ndarray, gpu: bool):
    from semsearch.storage.vectors import FaissIndex

    index = FaissIndex.empty(kind, vectors.shape[1], len(vectors), use_gpu=gpu)
    if index.needs_training:
        sample = np.random.default_rng(1).choice(len(vectors), min(len(vectors), index.training_size()), replace=False)
        index.train(vectors[sample])
    index.add(np.arange(len(vectors), dtype=np.int64), vectors)
    if gpu:
        index.search(vectors[:1], 10)  # makes the GPU copy
    return index


def memory_mb(index) -> float:
    with tempfile.TemporaryDirectory() as folder:
        return index.save(Path(folder), 0).stat().st_size / 1e6


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
    parser.add_argument("--kinds", nargs="+", default=["flat", "ivf", "hnsw"])
    parser.add_argument("--nprobe", type=int, nargs="+", default=None, help="IVF lists searched")
    parser.add_argument("--ef-search", type=int, nargs="+", default=None, help="HNSW search breadth")
    args = parser.parse_args()
    import faiss

    import semsearch.storage.vectors as settings

    gpu = args.device == "gpu"
    print(f"faiss {faiss.__version__}, {args.device}, dim {args.dim}, {faiss.omp_get_max_threads()} threads")
    print(
        f"{'size':>9} {'index':<34} {'build s':>8} {'q/s b=1':>9} {'q/s b=64':>9} {'recall@10':>9} "
        f"{'MB':>7} {'GB/1M':>6}"
    )
    for size in args.sizes:
        vectors, queries = data(size, args.dim, args.queries)
        truth = None
        for kind in ["flat", *(k for k in args.kinds if k != "flat")]:  # flat first: it is the truth
            started = time.perf_counter()
            index = build(kind, vectors, gpu)
            built = time.perf_counter() - started
            megabytes = memory_mb(index)
            values = {"ivf": args.nprobe, "hnsw": args.ef_search}.get(kind)
            for value in values or [None]:
                if value is not None and kind == "ivf":
                    settings.IVF_NPROBE = value
                    index.drop_gpu_copy()  # a GPU copy takes nprobe when it is made
                elif value is not None:
                    settings.hnsw_ef_search = lambda count, value=value: value
                _, found = index.search(queries, 10)
                truth = found if truth is None else truth
                recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)])
                if kind in args.kinds:
                    print(
                        f"{size:>9} {index.describe():<34} {built:>8.1f} "
                        f"{queries_per_second(index, queries, 1):>9.0f} {queries_per_second(index, queries, 64):>9.0f} "
                        f"{recall:>9.3f} {megabytes:>7.0f} {megabytes / size * 1e6 / 1e3:>6.2f}"
                    )
            del index
    return 0


if __name__ == "__main__":
    sys.exit(main())
