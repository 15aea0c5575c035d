"""Both storage backends side by side, on the same corpus in one run: the local folder (SQLite +
FAISS) and Milvus Lite 2.5 (the real Milvus engine, embedded as a child ``milvus`` process).

    python scripts/bench_backends.py [--chunks 100000] [--dimension 1792] [--queries 100]
                                     [--per-file 100] [--workdir DIR]

The corpus is --chunks passages of the Chinese novels in ../shared/data with synthetic clustered
unit vectors, as scripts/bench_query.py makes them: embedding 100 k chunks on a CPU takes hours,
and storage costs the same whatever the vectors are. A tiny random model with the real output
width (tests/modelfactory.py, built offline) only fills the manifest; nothing is embedded.

Everything is measured at the storage seam every search mode runs on (``Backend`` in
index/backend.py): ingest is ``commit`` of whole documents, ~FLUSH_CHUNKS chunks per commit as the
real ingest makes them (local: plus the final ``save`` of the FAISS file); a query is ``dense``
(a synthetic vector near a random corpus vector) or ``lexical`` (a short novel passage) inside its
own ``reading``, hybrid being both at HYBRID_DEPTH fused by ``ranking.fuse``. So query times
leave out embedding the query (the same on both backends) and reading the hit rows. Also:
``semsearch.migrate`` of the local index into a second Lite file; recall@10 of dense search
against exact numpy cosine; disk; memory (this process's RSS growth, and the Lite server's own).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import hashlib
import io
import os
import platform
import resource
import shutil
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NOVELS = ROOT.parent / "shared" / "data" / "zh-novels"
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from semsearch.documents.chunking import Chunk  # noqa: E402
from semsearch.documents.prepare import Document  # noqa: E402
from semsearch.index.backend import Backend, Candidates, Published  # noqa: E402
from semsearch.index.batch import FLUSH_CHUNKS  # noqa: E402
from semsearch.query import Where  # noqa: E402
from semsearch.retrieval.ranking import HYBRID_DEPTH, fuse  # noqa: E402

K = 10
EPOCH = 1_600_000_000.0  # the first document's mtime; each next one's an hour later
FOLDER_CHUNKS = 1_000  # chunks per synthetic folder: /synthetic/d000 holds 1% of 100 k
MODES = ("dense", "lexical", "hybrid", "dense, path filter", "dense, type+mtime filter")
FILTERS = {"dense, path filter": "path", "dense, type+mtime filter": "type+mtime"}


def passages(count: int) -> list[str]:
    text = "".join(p.read_text(encoding="utf-8") for p in sorted(NOVELS.glob("*.txt"))) or "示例文本。" * 1000
    return [text[(i * 97) % (len(text) - 200) :][:200] for i in range(count)]


class Corpus:
    """The chunks (texts, unit vectors), the documents of --per-file chunks they form, and the two
    filters with the chunk positions each lets through."""

    def __init__(self, chunks: int, dimension: int, per_file: int) -> None:
        rng = np.random.default_rng(0)
        centres = rng.standard_normal((256, dimension), dtype=np.float32)
        self.vectors = rng.standard_normal((chunks, dimension), dtype=np.float32)
        self.vectors *= 0.6
        self.vectors += centres[rng.integers(0, 256, chunks)]
        self.vectors /= np.linalg.norm(self.vectors, axis=1, keepdims=True)
        self.texts, self.per_file = passages(chunks), per_file
        documents = -(-chunks // per_file)
        number = np.arange(chunks) // per_file  # each chunk's document
        after = EPOCH + 3600 * (documents // 2)
        self.filters = {
            "path": Where(paths=("/synthetic/d000",)),
            "type+mtime": Where(types=("md",), modified_after=after),
        }
        self.masks = {
            "path": number * per_file < FOLDER_CHUNKS,
            "type+mtime": (number % 5 == 0) & (EPOCH + 3600 * number >= after),
        }

    def document(self, number: int) -> Document:
        first = number * self.per_file
        path = f"/synthetic/d{first // FOLDER_CHUNKS:03d}/{first:06d}.{'md' if number % 5 == 0 else 'txt'}"
        size = sum(len(t.encode()) for t in self.texts[first : first + self.per_file])
        return Document(path, hashlib.sha256(path.encode()).hexdigest(), size, EPOCH + 3600 * number, "utf-8")

    def batches(self) -> Iterator[list[Published]]:
        """Whole documents in commits of about FLUSH_CHUNKS chunks, as ingest makes them."""
        batch: list[Published] = []
        for number, first in enumerate(range(0, len(self.texts), self.per_file)):
            part = self.texts[first : first + self.per_file]
            chunks = [Chunk(t, 0, len(t), 1, len(t)) for t in part]
            batch.append(Published(self.document(number), chunks, self.vectors[first : first + len(part)]))
            if sum(len(p.chunks) for p in batch) >= FLUSH_CHUNKS:
                yield batch
                batch = []
        if batch:
            yield batch

    def exact(self, queries: np.ndarray, mask: np.ndarray | None) -> list[set[int]]:
        """The true top K positions of each query by cosine, among ``mask``'s chunks."""
        scores = queries @ self.vectors.T
        if mask is not None:
            scores[:, ~mask] = -np.inf
        return [set(row.tolist()) for row in np.argpartition(-scores, K, axis=1)[:, :K]]


def status(pid: int | str) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in bytes."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {
        k: int(v.split()[0]) * 1024 for k, _, v in (line.partition(":") for line in lines) if k in ("VmRSS", "VmHWM")
    }


def reset_peak() -> int:
    """Free what the last backend left (gc, malloc_trim), reset this process's peak RSS (Linux
    clear_refs 5, which getrusage's ru_maxrss follows); the RSS now."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
    return status("self")["VmRSS"]


def lite_servers(under: Path, exact: Path | None = None) -> list[int]:
    """Pids of Milvus Lite servers whose database (argv[1]) is ``exact`` or lies under ``under``."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
            ours = len(argv) > 1 and (
                argv[1] == os.fsencode(exact) if exact else argv[1].startswith(os.fsencode(under))
            )
            if ours and argv[0].endswith(b"/milvus"):
                found.append(int(entry.name))
    return found


def size_of(path: Path) -> int:
    files = [path] if path.is_file() else list(path.rglob("*"))
    return sum(f.stat().st_size for f in files if f.is_file())


def timed(backend: Backend, search: Callable[[int], Candidates], count: int) -> tuple[np.ndarray, list[list[int]]]:
    """Milliseconds of each query (one ``reading`` each, as a real search) and its top K ids."""
    with backend.reading():
        search(0)  # warm-up
    times, found = [], []
    for number in range(count):
        started = time.perf_counter()
        with backend.reading():
            hits = search(number)
        times.append(time.perf_counter() - started)
        found.append([chunk for chunk, _ in hits[:K]])
    return np.array(times) * 1000, found


def searches(backend: Backend, corpus: Corpus, vectors: np.ndarray, texts: list[str]) -> dict[str, Any]:
    def dense(where: Where | None, depth: int = K) -> Callable[[int], Candidates]:
        return lambda n: backend.dense(vectors[n : n + 1], depth, where, "/")[0]

    def hybrid(n: int) -> Candidates:
        found = fuse(dense(None, HYBRID_DEPTH)(n), backend.lexical(texts[n], HYBRID_DEPTH, None, "/"))
        return [(r.chunk_id, r.score) for r in found]

    calls = {"dense": dense(None), "lexical": lambda n: backend.lexical(texts[n], K, None, "/"), "hybrid": hybrid}
    calls |= {mode: dense(corpus.filters[name]) for mode, name in FILTERS.items()}
    out: dict[str, Any] = {}
    for mode, call in calls.items():
        ms, found = timed(backend, call, len(texts))
        out[f"{mode} p50 ms"], out[f"{mode} p95 ms"] = np.percentile(ms, 50), np.percentile(ms, 95)
        if mode.startswith("dense"):
            with backend.reading():
                rows = backend.chunks(sorted({i for row in found for i in row}))
            hits = [{int(Path(rows[i].path).stem) + rows[i].seq for i in row} for row in found]
            mask = corpus.masks[FILTERS[mode]] if mode in FILTERS else None
            truth = corpus.exact(vectors, mask)
            out[f"recall@10 {mode}"] = np.mean([len(h & t) / K for h, t in zip(hits, truth, strict=True)])
    return out


def measure(
    location: str, lite: Path | None, manifest: Any, corpus: Corpus, queries: tuple[np.ndarray, list[str]]
) -> dict[str, Any]:
    import semsearch

    base = reset_peak()
    index = semsearch.open_index(location, manifest.model.model, device="cpu")
    try:
        backend = index.handle
        with backend.lock():  # the local one reopens the folder here
            backend.manifest = manifest  # the tiny model's, planned once: no model loads
            backend.create()
            started = time.perf_counter()
            for batch in corpus.batches():
                backend.commit(batch, [])
            saving = time.perf_counter()
            backend.save()
            ended = time.perf_counter()
        out: dict[str, Any] = {"ingest chunks/s": len(corpus.texts) / (ended - started), "ingest s": ended - started}
        out["of which final save s"] = ended - saving
        out["vector structure"] = index.info().index_type
        out |= searches(backend, corpus, *queries)
        out["disk MB"] = size_of(lite or Path(location)) / 1e6
        now = status("self")
        out["python RSS growth at the end MB"] = (now["VmRSS"] - base) / 1e6
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # since ``reset_peak``
        out["python peak RSS growth MB"] = (peak - base) / 1e6
        for pid in lite_servers(Path("/"), lite) if lite else []:
            server = status(pid)
            out["server RSS MB"], out["server peak RSS MB"] = server["VmRSS"] / 1e6, server["VmHWM"] / 1e6
        if backend.notes:
            print(f"  notes: {'; '.join(backend.notes)}")
        return out
    finally:
        index.close()


def table(local: dict[str, Any], lite: dict[str, Any]) -> None:
    print(f"\n{'':<36}{'local':>22}{'Milvus Lite':>22}{'Milvus/local':>14}")
    for key in dict.fromkeys([*local, *lite]):
        one, two = local.get(key, "-"), lite.get(key, "-")
        shown = [f"{v:,.3f}" if "recall" in key else f"{v:,.1f}" if isinstance(v, float) else v for v in (one, two)]
        numeric = isinstance(one, float) and isinstance(two, float) and min(one, two) > 0
        ratio = f"{two / one:.2f}x" if numeric and key[:6] not in ("recall", "of whi") else ""
        print(f"{key:<36}{shown[0]:>22}{shown[1]:>22}{ratio:>14}")


def notes(local: dict[str, Any], lite: dict[str, Any]) -> None:
    approximate = not str(local["vector structure"]).startswith("flat")
    why = (
        "local's is approximate (synthetic clusters are easy for IVF; scripts/bench_search.py measured\n"
        "  0.995 at 1 M), so the dense latency ratio is mostly exact against approximate search, not\n"
        "  Milvus against FAISS"
        if approximate
        else "both exact, so the dense latency ratio is the engines' own plus Lite's socket and ledger query"
    )
    print(f"""
What this means for a Milvus cluster:
- Lite searched {lite["vector structure"]}: exact brute force in one child process on this
  machine, over a unix socket; each search also asks the ledger for the hits' current versions.
  Local searched {local["vector structure"]} in this process (filters: exact from SQLite when few
  chunks pass, else over-fetched). Recall@10 {local["recall@10 dense"]:.3f} local, {lite["recall@10 dense"]:.3f} Lite:
  {why}.
- A cluster adds network hops to every call (client -> proxy -> query nodes), so one query is
  unlikely to beat these Lite latencies, but segments spread over query nodes: throughput and
  data size scale out, which one machine cannot.
- On a server, auto means AUTOINDEX (HNSW-like); HNSW and DISKANN trade recall for speed at
  millions of vectors, as local IVF does. Lite builds only FLAT/IVF_FLAT, searched exactly.
- Ingest into Milvus pays per commit for gRPC, server-side BM25 and deleting older versions; a
  cluster's is network-bound too, but many writers may ingest at once (Lite allows one).""")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--dimension", type=int, default=1792)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--per-file", type=int, default=100)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder, removed at the end")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks stop the Lite servers
    work = Path(tempfile.mkdtemp(prefix="bench-backends-", dir=args.workdir)).resolve()
    try:
        run(args, work)
    finally:
        left = lite_servers(work)
        deadline = time.monotonic() + 5
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = lite_servers(work)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
            print(f"killed a leftover milvus server, pid {pid}")
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def run(args: argparse.Namespace, work: Path) -> None:
    import faiss  # imported before any measure: neither backend pays for its imports
    import pymilvus  # noqa: F401
    from modelfactory import build_model

    with warnings.catch_warnings():  # milvus-lite 2.5 imports the deprecated pkg_resources
        warnings.simplefilter("ignore", UserWarning)
        import milvus_lite  # noqa: F401

    import semsearch
    from semsearch.embedding.encoder import Encoder
    from semsearch.index.manifest import plan

    memory = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    print(
        f"machine: {os.cpu_count()} cores, {memory / 2**30:.0f} GiB RAM, python {platform.python_version()}, "
        f"pymilvus {version('pymilvus')}, milvus-lite {version('milvus-lite')}, faiss {faiss.__version__}"
    )
    with contextlib.redirect_stderr(io.StringIO()):  # transformers' progress bar
        model = build_model(work / "model", dense=[(args.dimension, "identity")])
    manifest = plan(Encoder.load(str(model), "cpu"), None, None)  # loaded once, before any measure
    corpus = Corpus(args.chunks, args.dimension, args.per_file)
    rng = np.random.default_rng(1)
    near = corpus.vectors[rng.integers(0, args.chunks, args.queries)]
    vectors = near + rng.standard_normal(near.shape, dtype=np.float32) / np.float32(np.sqrt(args.dimension))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = [p[:12] for p in passages(args.queries * 7)[3::7]]
    shares = {name: f"{mask.mean():.1%}" for name, mask in corpus.masks.items()}
    print(
        f"corpus: {args.chunks} chunks, {args.dimension}-d, {-(-args.chunks // args.per_file)} documents; "
        f"{args.queries} queries, k={K}; filters pass path {shares['path']}, type+mtime {shares['type+mtime']}"
    )
    print("local: ingest and queries")
    local = measure(str(work / "local"), None, manifest, corpus, (vectors, texts))
    print("Milvus Lite: ingest and queries")
    lite = measure(f"milvus-lite:{work / 'lite.db'}", work / "lite.db", manifest, corpus, (vectors, texts))
    table(local, lite)
    report = semsearch.migrate(str(work / "local"), f"milvus-lite:{work / 'migrated.db'}")
    print(
        f"\nmigrate local -> Milvus Lite: {report.documents_copied} documents, {report.chunks_copied} chunks in "
        f"{report.seconds:.1f} s ({report.chunks_copied / max(report.seconds, 1e-9):,.0f} chunks/s), "
        f"{size_of(work / 'migrated.db') / 1e6:,.0f} MB"
    )
    notes(local, lite)


if __name__ == "__main__":
    sys.exit(main())
