"""Kill -9 an ingest in the middle of one large file, then run it again: how much is embedded again?

    python scripts/bench_resume.py [--model DIR] [--chars 400000] [--at 0.5]

Writes one file of --chars characters of a Chinese novel (../shared/data; generated text where
that is absent), starts ``semsearch ingest`` on it in a subprocess, and SIGKILLs it once the
staged chunks (embedded, committed, not yet published) reach --at of the file's chunks. Then runs
the same ingest again and reports the file's chunks, those staged at the kill, those the rerun
embedded and took from the stage, and the times of the first run (to the kill), the rerun and a
fresh ingest of the same file. Without --model a tiny random model in xiaobu-embedding-v2's layout
is built (tests/modelfactory.py).
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

from faults import environment, ingest_command, make_corpus  # noqa: E402


def staged(index: Path) -> int:
    try:
        with sqlite3.connect(f"{(index / 'semsearch.db').as_uri()}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT count(*) FROM staged").fetchone()[0])
    except sqlite3.Error:
        return 0


def ingest(corpus: Path, index: Path, model: Path | None) -> tuple[dict, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [*ingest_command(corpus, index, model), "--json"], capture_output=True, text=True, env=environment()
    )
    if done.returncode != 0:
        raise SystemExit(f"ingest failed: {done.stderr.strip()}")
    return json.loads(done.stdout), time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="sentence-transformers folder (default: a tiny one)")
    parser.add_argument("--chars", type=int, default=400_000, help="characters in the one large file")
    parser.add_argument("--at", type=float, default=0.5, help="kill when this share of the chunks is staged")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="semsearch-resume-") as scratch:
        work = Path(scratch)
        model = args.model
        if model is None:
            from modelfactory import build_model

            model = build_model(work / "model")
        corpus = work / "corpus"
        make_corpus(corpus, files=1, chars=args.chars)
        fresh, fresh_seconds = ingest(corpus, work / "fresh", model)
        total = fresh["chunks_total"]
        index = work / "index"
        started = time.perf_counter()
        process = subprocess.Popen(
            ingest_command(corpus, index, model), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment()
        )
        while process.poll() is None and staged(index) < args.at * total:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_after = time.perf_counter() - started
        at_kill = staged(index)
        rerun, rerun_seconds = ingest(corpus, index, None)
    print(f"one file of {args.chars:,} characters: {total:,} chunks; model {model}")
    print(f"fresh ingest: {fresh['chunks_embedded']:,} chunks embedded in {fresh_seconds:.1f} s")
    print(f"killed (rc {process.returncode}) after {killed_after:.1f} s with {at_kill:,} chunks staged")
    print(
        f"rerun: {rerun['chunks_embedded']:,} chunks embedded, {rerun['chunks_resumed']:,} taken from the stage, "
        f"in {rerun_seconds:.1f} s; {rerun['chunks_total']:,} in the index"
    )
    lost = rerun["chunks_embedded"] + rerun["chunks_resumed"] - total
    print(f"embedded twice: {rerun['chunks_embedded'] - (total - at_kill):,} chunks (work lost to the kill: {lost})")
    return 0 if rerun["chunks_embedded"] == total - at_kill else 1


if __name__ == "__main__":
    sys.exit(main())
