"""Soak test: kill -9 a real ``semsearch ingest`` at random moments, many times, and check the
index after every kill and at the end (the long form of tests/index/test_crash.py).

    python scripts/crash_soak.py [--kills 100] [--files 200] [--chars 3000] [--seed 1] [--model DIR]

Between kills the corpus changes (a file edited, deleted, renamed or added), so kills land in
adds, updates, renames and deletes. Without --model a tiny random model in xiaobu-embedding-v2's
layout is built (tests/modelfactory.py). Exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

from faults import check_final, environment, ingest_command, kill_loop, make_corpus  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--chars", type=int, default=3000)
    parser.add_argument("--max-delay", type=float, default=30.0, help="latest kill, seconds after the lock")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model", type=Path, help="sentence-transformers folder (default: a tiny one)")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="semsearch-soak-") as scratch:
        work = Path(scratch)
        model = args.model
        if model is None:
            from modelfactory import build_model

            model = build_model(work / "model")
        corpus = work / "corpus"
        make_corpus(corpus, args.files, args.chars, args.seed)
        rounds = kill_loop(corpus, work / "index", model, args.kills, args.max_delay, args.seed)
        finish = subprocess.run(
            ingest_command(corpus, work / "index", None), capture_output=True, text=True, env=environment()
        )
        problems = [p for r in rounds for p in r.problems]
        if finish.returncode != 0:
            problems.append(f"the final ingest failed: {finish.stderr.strip()}")
        reference = subprocess.run(
            ingest_command(corpus, work / "reference", model), capture_output=True, text=True, env=environment()
        )
        problems += check_final(work / "index", corpus, work / "reference") if reference.returncode == 0 else []
    killed = [r for r in rounds if r.returncode == -9]
    print(
        f"\n{len(rounds)} runs: {len(killed)} killed ({sum(r.mid_ingest for r in rounds)} between commits, "
        f"{sum(r.generation < 0 for r in killed)} before the database existed), "
        f"{len(rounds) - len(killed)} finished first; {len(problems)} problems; "
        f"{time.perf_counter() - started:.0f} s"
    )
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
