"""The same benchmark on two versions of the code, side by side in one run: for a change that
should not change speed (a refactor), "before" and "after" alternate for --rounds rounds on the
same machine, in ABBA order (before first in odd rounds, after first in even ones), so drift in
the machine's load and any advantage of going first or second fall on both.

    python scripts/bench_trees.py --before REV [--rounds 2] [--pick REGEX ...] -- SCRIPT [ARGS...]

SCRIPT (e.g. scripts/bench_query.py) runs from a git worktree of REV with that tree's code first
on the import path (shadowing the installed package), then from this tree. Each run's lines
matching a --pick pattern are printed under its label; without --pick, the whole output.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(tree: Path, command: list[str]) -> str:
    environment = dict(os.environ, PYTHONPATH=str(tree))
    done = subprocess.run(
        [sys.executable, str(tree / command[0]), *command[1:]],
        cwd=tree,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"{command[0]} failed in {tree}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the git revision to compare with")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pick", action="append", default=[], help="regex of output lines to show")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the benchmark script to run after --")
    picks = [re.compile(p) for p in args.pick]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill still removes the worktree
    with tempfile.TemporaryDirectory() as work:
        before = Path(work) / ROOT.name
        shared = ROOT.parent / "shared"  # the data sets the benchmarks read, beside the checkout
        if shared.exists():
            (Path(work) / "shared").symlink_to(shared)
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(before), args.before], cwd=ROOT, check=True)
        try:
            for number in range(1, args.rounds + 1):
                pair = [(f"before ({args.before})", before), ("after (this tree)", ROOT)]
                for label, tree in pair if number % 2 else pair[::-1]:  # ABBA: order effects cancel
                    output = run(tree, command)
                    lines = [line for line in output.splitlines() if not picks or any(p.search(line) for p in picks)]
                    print(f"== round {number}, {label}")
                    print("\n".join(lines), flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
