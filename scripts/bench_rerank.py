"""What reranking adds to a query: latency at depths 20, 50 and 100, side by side with the same
query unreranked, and the compute per (query, passage) pair of the real bge rerankers.

The index holds the first chapters of a Chinese novel (../shared/data/zh-novels, else
sample_docs), embedded with a tiny random model; the rerankers are tiny random folders of the
two layouts (tests/rerankers.py: BERT and XLM-RoBERTa, 2 layers, hidden 64), so the times are
the pipeline's own overhead plus a small model's forward passes, not a real reranker's. Dense
mode by default: it always has ``depth`` candidates (a lexical query may match fewer chunks).
Each round runs every configuration once, in turn, so load on the machine hits them alike.

    python scripts/bench_rerank.py [--rounds 30] [--mode dense]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

NOVEL = ROOT.parent / "shared" / "data" / "zh-novels"
QUERIES = ["诸葛亮借东风", "关羽过五关斩六将", "曹操煮酒论英雄", "刘备三顾茅庐", "赵云单骑救主"]
DEPTHS = (20, 50, 100)
# (layers, hidden, intermediate) of the real models (their config.json); all three are XLM-RoBERTa
REAL = {
    "BAAI/bge-reranker-base": (12, 768, 3072),
    "BAAI/bge-reranker-large": (24, 1024, 4096),
    "BAAI/bge-reranker-v2-m3": (24, 1024, 4096),
}


def flops_per_pair(layers: int, hidden: int, intermediate: int, tokens: int) -> float:
    """Forward FLOPs of an encoder over one sequence of ``tokens``: per layer, the Q, K, V and
    output projections (4 d^2 per token), the feed-forward (2 d f per token), attention scores
    and their weighted sum (2 n^2 d), each multiply-add counted as 2."""
    per_layer = 2 * tokens * (4 * hidden * hidden + 2 * hidden * intermediate) + 2 * 2 * tokens * tokens * hidden
    return float(layers * per_layer)


def corpus(folder: Path) -> Path:
    docs = folder / "docs"
    docs.mkdir()
    novel = next(iter(sorted(NOVEL.glob("*三国*"))), None) if NOVEL.exists() else None
    if novel is None:
        import shutil

        shutil.copytree(ROOT / "sample_docs", docs / "sample")
        return docs
    text = novel.read_bytes().decode("utf-8", "replace").replace("\r\n", "\n")
    for number in range(40):  # 40 files of 3,000 characters
        (docs / f"part{number:02}.txt").write_text(text[number * 3000 : (number + 1) * 3000], encoding="utf-8")
    return docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--mode", default="dense", choices=("dense", "lexical", "hybrid"))
    args = parser.parse_args()

    import torch
    from modelfactory import build_model
    from rerankers import build_reranker

    import semsearch

    with tempfile.TemporaryDirectory(prefix="bench-rerank-") as scratch:
        work = Path(scratch)
        model = build_model(work / "model")
        rerankers = {layout: str(build_reranker(work / layout, layout)) for layout in ("bert", "xlmr")}
        with semsearch.open_index(work / "kb", model=str(model), device="cpu") as index:
            index.ingest([corpus(work)])
            chunks = index.info().chunks
            configs = [("none", None, 0)] + [
                (f"{layout} @{d}", path, d) for layout, path in rerankers.items() for d in DEPTHS
            ]
            times: dict[str, list[float]] = {name: [] for name, _, _ in configs}
            for _, rerank, depth in configs:  # warm-up: models loaded before the clock starts
                index.search(QUERIES[0], k=10, mode=args.mode, rerank=rerank, rerank_depth=max(depth, 1))
            for round_number in range(args.rounds):
                query = QUERIES[round_number % len(QUERIES)]
                for name, rerank, depth in configs:
                    started = time.perf_counter()
                    index.search(query, k=10, mode=args.mode, rerank=rerank, rerank_depth=max(depth, 1))
                    times[name].append((time.perf_counter() - started) * 1000)
    base = statistics.median(times["none"])
    print(f"{chunks} chunks, mode {args.mode}, k 10, {args.rounds} rounds, torch threads {torch.get_num_threads()}")
    print(f"{'reranker @ depth':<18}{'p50 ms':>9}{'added ms':>10}{'x plain':>9}{'ms/pair':>9}")
    for name, _, depth in configs:
        p50 = statistics.median(times[name])
        per_pair = f"{(p50 - base) / depth:>9.2f}" if depth else ""
        print(f"{name:<18}{p50:>9.2f}{p50 - base:>10.2f}{p50 / base:>9.2f}{per_pair}")
    print("\nForward GFLOPs per (query, passage) pair of the real rerankers (XLM-RoBERTa encoders):")
    print(f"{'model':<26}{'276 tokens':>12}{'512 tokens':>12}{'x50 pairs @276':>16}")
    for name, shape in REAL.items():
        short, full = (flops_per_pair(*shape, tokens) / 1e9 for tokens in (276, 512))
        print(f"{name:<26}{short:>12.1f}{full:>12.1f}{short * 50 / 1e3:>13.2f} TF")
    print("(276 = a 16-token query + a 256-token chunk + 4 special tokens)")


if __name__ == "__main__":
    main()
