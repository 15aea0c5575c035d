"""Lexical search across Traditional and Simplified Chinese: what folding recovers.

    python scripts/bench_folding.py [--dataset ../shared/data/cmrc2018-retrieval] [--limit N]

CMRC 2018 (Simplified) with its corpus converted to Traditional by OpenCC and the queries left
Simplified, and the reverse, each in two conversions: ``s2t`` (characters and common phrases) and
``s2twp`` (Taiwan standard with Taiwan phrases: 软件 -> 軟體, 内存 -> 記憶體). Lexical nDCG@10 with
the terms folded as semsearch folds them now, and without folding Traditional to Simplified (the
fold before it, NFKC + casefold, swapped in for index and queries alike), against the
all-Simplified figure. Indexes are built with a tiny random model (tests/modelfactory.py): lexical
search does not use the vectors.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HITS = 20  # chunk hits a query: enough for the top 10 documents (most passages are one chunk)
sys.path.insert(0, str(ROOT / "tests"))


def unfolded(text: str) -> str:
    """The fold before Traditional/Simplified folding: NFKC, then case-folded."""
    return unicodedata.normalize("NFKC", text).casefold()


@contextmanager
def folding(on: bool) -> Iterator[None]:
    """Terms folded as now, or (off) as before: for what is indexed and for the query alike."""
    from semsearch.documents import terms

    real = terms.fold
    if not on:
        terms.fold = unfolded
    try:
        yield
    finally:
        terms.fold = real


def converted(dataset, corpus: Callable[[str], str], queries: Callable[[str], str]):  # type: ignore[no-untyped-def]
    from semsearch.evaluation import Dataset

    return Dataset(
        dataset.name,
        {i: (corpus(title), corpus(text)) for i, (title, text) in dataset.corpus.items()},
        {i: queries(text) for i, text in dataset.queries.items()},
        dataset.qrels,
    )


def ndcg(index, dataset, paths: dict[str, str]) -> float:  # type: ignore[no-untyped-def]
    import ir_measures

    measure = ir_measures.parse_measure("nDCG@10")
    qrels = [ir_measures.Qrel(q, d, s) for q, docs in dataset.qrels.items() for d, s in docs.items()]
    run = []
    for query_id, text in dataset.queries.items():
        best: dict[str, float] = {}
        for hit in index.search(text, k=HITS, mode="lexical"):
            doc_id = paths.get(hit.source)
            if doc_id is not None and doc_id not in best:
                best[doc_id] = hit.score
        run += [ir_measures.ScoredDoc(query_id, d, s) for d, s in best.items()]
    return float(ir_measures.calc_aggregate([measure], qrels, run)[measure])


def measure(corpus, query_sets: list, model: Path, work: Path, on: bool, name: str) -> list[float]:  # type: ignore[no-untyped-def]
    """nDCG@10 of each of ``query_sets`` (datasets sharing ``corpus``) on one index of ``corpus``."""
    import semsearch
    from semsearch.evaluation import write_corpus

    with folding(on):
        paths = write_corpus(corpus, work / name / "corpus")
        with semsearch.open_index(work / name / "index", str(model), device="cpu") as index:
            index.ingest([work / name / "corpus"], max_file_bytes=None)
            return [ndcg(index, queries, paths) for queries in query_sets]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared" / "data" / "cmrc2018-retrieval")
    parser.add_argument("--limit", type=int, default=0, help="the first N judged queries (default: all)")
    args = parser.parse_args()
    if not args.dataset.is_dir():
        print(f"No dataset at {args.dataset}", file=sys.stderr)
        return 1
    import opencc
    from modelfactory import build_model

    from semsearch.evaluation import load_beir, subset

    simplified = load_beir(args.dataset)
    if args.limit:
        simplified = subset(simplified, args.limit)
    same = str
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="semsearch-folding-") as scratch:
        work = Path(scratch)
        model = build_model(work / "model")
        configs = ("s2t", "s2twp")
        convert = {config: opencc.OpenCC(config).convert for config in configs}
        # one index per corpus and fold: the Simplified one answers the Traditional queries too
        asked = [simplified] + [converted(simplified, same, convert[c]) for c in configs]
        found = {}
        for on in (False, True):
            found["simplified", on] = measure(simplified, asked, model, work, on, f"simplified-{on}")
            for config in configs:
                corpus = converted(simplified, convert[config], same)
                found[config, on] = measure(corpus, [corpus], model, work, on, f"{config}-{on}")
        baseline = found["simplified", True][0]
        rows = []
        for number, config in enumerate(configs, start=1):
            rows.append(
                (f"corpus Traditional ({config}), queries Simplified", found[config, False][0], found[config, True][0])
            )
            rows.append(
                (
                    f"corpus Simplified, queries Traditional ({config})",
                    found["simplified", False][number],
                    found["simplified", True][number],
                )
            )
        rows.append(("all Simplified (for reference)", found["simplified", False][0], baseline))
    print(
        f"{len(simplified.corpus)} passages, {len(simplified.queries)} queries; {time.perf_counter() - started:.0f} s\n"
    )
    print("| corpus / queries | nDCG@10 without folding | with folding | all Simplified | recovered |")
    print("|---|---|---|---|---|")
    for label, off, on in rows:
        print(f"| {label} | {off:.4f} | {on:.4f} | {baseline:.4f} | {100 * on / baseline:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
