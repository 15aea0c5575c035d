"""The reranker on the CPU in each runtime and precision, side by side in one run: one query and
``--depth`` passages of the Chinese novels (about 256 tokens a pair), as a reranked search scores
them.

    python scripts/bench_rerank_cpu.py [--shape tiny|base] [--depth 50] [--rounds 3] [--threads 2]

``tiny`` is the tests' XLM-RoBERTa cross-encoder (2 layers, hidden 64); ``base`` has
BAAI/bge-reranker-base's shape (XLM-RoBERTa, 12 layers, hidden 768, 12 heads, intermediate 3072)
with random weights and a small vocabulary (the vocabulary costs no compute). Prints seconds per
query, the ratio to PyTorch float32, and the largest change of a score (as a share of the
scores' range) against it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
NOVELS = ROOT.parent / "shared" / "data" / "zh-novels"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=["tiny", "base"], default="tiny")
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch
    from rerankers import build_reranker

    from semsearch.embedding.reranker import Reranker

    torch.set_num_threads(args.threads)
    scratch = Path(tempfile.mkdtemp(prefix="bench-rerank-cpu-"))
    if args.shape == "base":
        folder = build_reranker(scratch / "base", "xlmr", layers=12, hidden=768, heads=12, intermediate=3072)
    else:
        folder = build_reranker(scratch / "tiny", "xlmr")
    sources = sorted(NOVELS.glob("*.txt")) or sorted((ROOT / "sample_docs").rglob("*.md"))
    text = "".join(p.read_text(encoding="utf-8") for p in sources[:2])
    passages = [text[i * 300 : (i + 1) * 300] for i in range(args.depth)]
    pairs = [("诸葛亮借东风是怎么回事", passage) for passage in passages]
    loaded = {"torch fp32": Reranker.load(folder, "cpu", runtime="torch")}
    for precision in ("fp32", "bf16", "auto", "int8"):
        started = time.perf_counter()
        reranker = Reranker.load(folder, "cpu", runtime="openvino", precision=precision, threads=args.threads)
        name = f"openvino {precision}" + (f" (= {reranker.choice.precision})" if precision == "auto" else "")
        loaded[name] = reranker
        print(f"{name}: loaded in {time.perf_counter() - started:.1f} s", flush=True)
    tokens = sum(loaded["torch fp32"].token_counts(pairs))
    reference = loaded["torch fp32"].predict(pairs)
    scores = {name: r.predict(pairs) for name, r in loaded.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in loaded}
    names = list(loaded)
    for number in range(args.rounds):
        for name in names if number % 2 == 0 else names[::-1]:
            started = time.perf_counter()
            loaded[name].predict(pairs)
            times[name].append(time.perf_counter() - started)
    spread = max(float(np.ptp(reference)), 1e-9)
    base = statistics.median(times["torch fp32"])
    print(f"{args.shape} shape, depth {args.depth}, {tokens} tokens a query, {args.threads} threads")
    print(f"{'runtime precision':<28} {'s/query':>8} {'ratio':>6} {'max shift':>10}")
    for name, spent in times.items():
        median = statistics.median(spent)
        shift = float(np.abs(scores[name] - reference).max()) / spread
        print(f"{name:<28} {median:>8.3f} {base / median:>5.2f}x {shift:>10.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
