"""semsearch's encoder against SentenceTransformer.encode: same model folder, same texts, same
device, in one run, alternating.

    python scripts/bench_encode.py [--model DIR | --shape tiny|full] [--device cpu|cuda]
                                   [--texts 2000] [--rounds 3] [--threads N]

Without --model a folder with random weights is built (tests/modelfactory.py): ``tiny`` (2
layers, hidden 64) or ``full``, the exact shape of lier007/xiaobu-embedding-v2 (24 layers, hidden
1024, 16 heads, intermediate 4096, 21128-token vocabulary, 512 positions, Dense 1024 -> 1792),
which costs the same compute as the real weights. Texts are chunks of the Chinese novels in
../shared/data (sample_docs/ when absent) at 64 to 256 tokens, so lengths vary as in an ingest.

Rows: both at their defaults (semsearch: fp16 on CUDA; sentence-transformers: fp32, batch 32),
and on CUDA both in float16, each at its best of several batch settings (sentence-transformers:
batch 32 to 256; semsearch: a padded-token budget of 16 to 128 times the model's limit). Prints
real tokens/s (special tokens included, padding not), chunks/s, padding (pad tokens / real
tokens), peak memory, and semsearch / sentence-transformers ratios. With --peak-tflops (default
on an H100: 800, dense bf16/fp16) it also prints the share of the hardware limit: tokens/s times
the model's FLOP per token (2 x the weights each token passes through, plus attention at the
mean length) over the peak. Needs sentence-transformers (pip install '.[test]').
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NOVELS = ROOT.parent / "shared" / "data" / "zh-novels"
sys.path.insert(0, str(ROOT / "tests"))

from modelfactory import build_shape  # noqa: E402


def load_texts(tokenizer_spans: Callable, count: int, max_tokens: int, tokens: int | None = None) -> list[str]:
    from semsearch.documents.chunking import chunk_text

    sources = sorted(NOVELS.glob("*.txt")) or sorted((ROOT / "sample_docs").rglob("*.md"))
    texts: list[str] = []
    for size in (tokens,) if tokens else (256, 128, 64, 256):
        for source in sources:
            text = source.read_text(encoding="utf-8")[: 40 * size * max(1, count // 40)]
            texts += [c.text for c in chunk_text(text, tokenizer_spans, min(size, max_tokens), 16, max_tokens)]
            if len(texts) >= count:
                return texts[:count]
    return (texts * (count // max(1, len(texts)) + 1))[:count]


def padding_share(lengths: list[int], batches: list[list[int]]) -> float:
    real = sum(lengths)
    padded = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)
    return (padded - real) / real


def st_batches(texts: list[str], batch_size: int) -> list[list[int]]:
    # SentenceTransformer.encode: longest text (in characters) first, fixed batch size
    order = np.argsort([-len(t) for t in texts], kind="stable").tolist()
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def timed(run: Callable[[], object], device: str) -> tuple[float, float]:
    """(seconds, peak memory in MB: CUDA allocated on a GPU, the process's max RSS on CPU)."""
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    run()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        return time.perf_counter() - started, torch.cuda.max_memory_allocated() / 1e6
    return time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--shape", choices=["tiny", "full"], default=None)
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    parser.add_argument("--texts", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's dense fp16 peak")
    parser.add_argument("--tokens", type=int, default=None, help="every text this many tokens")
    parser.add_argument("--peer-python", default=None, help="a Python with optimum-intel (CPU rows)")
    args = parser.parse_args()
    if not args.device.startswith("cuda"):
        return cpu_rows(args)
    import torch
    from sentence_transformers import SentenceTransformer

    from semsearch.embedding.encoder import Encoder

    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = args.device.startswith("cuda")
    scratch = tempfile.TemporaryDirectory(prefix="bench-encode-")
    model = args.model or build_shape(Path(scratch.name), args.shape or ("full" if gpu else "tiny"))
    ours = Encoder.load(str(model), device=args.device)
    theirs = SentenceTransformer(str(model), device=args.device)
    texts = load_texts(ours.token_spans, args.texts or (4000 if gpu else 400), ours.max_text_tokens)
    lengths = [len(e) for e in ours.tokenize(texts)]
    real = sum(lengths)
    print(f"{len(texts)} texts, {real} real tokens (mean {real / len(texts):.0f}), device {args.device}, "
          f"torch threads {torch.get_num_threads()}, model {model}")  # fmt: skip

    rows = [("defaults", lambda: ours.encode(texts), lambda: theirs.encode(texts), ours, st_batches(texts, 32))]
    if gpu:
        theirs_half = SentenceTransformer(str(model), device=args.device).half()
        best_st = max((32, 64, 128, 256), key=lambda b: _throughput(lambda: theirs_half.encode(texts, batch_size=b)))
        best_ours = max((16, 32, 64, 128), key=lambda b: _throughput(lambda: ours.encode(texts, batch_size=b)))
        rows.append(
            (
                f"float16, best batch (ours {best_ours}x, theirs {best_st})",
                lambda: ours.encode(texts, batch_size=best_ours),
                lambda: theirs_half.encode(texts, batch_size=best_st),
                ours,
                st_batches(texts, best_st),
            )
        )
    tflops = args.peak_tflops or (800.0 if gpu and "H100" in torch.cuda.get_device_name(args.device) else None)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(base_transformer(model)))
    flop = flop_per_token(config, real / len(texts), ours.dimension if ours.info.dense else 0)
    print(f"model cost {flop / 1e9:.4f} GFLOP per token" + (f", device peak {tflops:.0f} TFLOP/s" if tflops else ""))
    print(f"{'setting':<44} {'who':<22} {'tokens/s':>10} {'chunks/s':>9} {'padding':>8} {'peak MB':>8}")
    for name, run_ours, run_theirs, encoder, their_batches in rows:
        run_ours(), run_theirs()  # warm-up
        times: dict[str, list[float]] = {"semsearch": [], "sentence-transformers": []}
        peaks: dict[str, float] = {}
        for number in range(args.rounds):
            pair = [("semsearch", run_ours), ("sentence-transformers", run_theirs)]
            for who, run in pair if number % 2 == 0 else pair[::-1]:
                seconds, peak = timed(run, args.device)
                times[who].append(seconds)
                peaks[who] = max(peaks.get(who, 0.0), peak)
        ours_padding = encoder.last_padding if hasattr(encoder, "last_padding") else float("nan")
        paddings = {"semsearch": ours_padding, "sentence-transformers": padding_share(lengths, their_batches)}
        median = {who: statistics.median(t) for who, t in times.items()}
        for who in times:
            print(
                f"{name:<44} {who:<22} {real / median[who]:>10.0f} {len(texts) / median[who]:>9.1f} "
                f"{paddings[who]:>8.1%} {peaks[who]:>8.0f}"
            )
        print(f"{'':<44} {'ratio':<22} {median['sentence-transformers'] / median['semsearch']:>10.2f}x")
        if tflops:
            share = real / median["semsearch"] * flop / (tflops * 1e12)
            print(f"{'':<44} {'of the hardware limit':<22} {share:>10.1%} (limit {tflops * 1e12 / flop:,.0f} tokens/s)")
    return 0


def cpu_rows(args: argparse.Namespace) -> int:
    """Every runtime x precision on the CPU, side by side, against semsearch's PyTorch float32."""
    import json
    import subprocess

    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoConfig

    from semsearch.embedding.encoder import Encoder

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    scratch = tempfile.TemporaryDirectory(prefix="bench-encode-")
    model = args.model or build_shape(Path(scratch.name), args.shape or "tiny")
    base = Encoder.load(str(model), device="cpu", runtime="torch")
    count = args.texts or 32
    texts = load_texts(base.token_spans, count, base.max_text_tokens, args.tokens)
    lengths = [len(e) for e in base.tokenize(texts)]
    real = sum(lengths)
    config = AutoConfig.from_pretrained(str(base_transformer(model)))
    flop = flop_per_token(config, real / len(texts), base.dimension if base.info.dense else 0)
    peaks = {dtype: matmul_peak(dtype, threads) for dtype in ("fp32", "bf16")}
    print(f"{len(texts)} texts, {real} real tokens (mean {real / len(texts):.0f}), {threads} threads, model {model}")
    print(f"model cost {flop / 1e9:.4f} GFLOP per token; measured matmul peak "
          f"fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s")  # fmt: skip
    runners: dict[str, Callable[[], np.ndarray]] = {"semsearch torch fp32": lambda: base.encode(texts)}
    loads: dict[str, str] = {}
    for precision in ("fp32", "bf16", "auto", "int8"):
        started = time.perf_counter()
        encoder = Encoder.load(str(model), device="cpu", runtime="openvino", precision=precision, threads=threads)
        name = f"semsearch openvino {precision}" + (f" (= {encoder.precision})" if precision == "auto" else "")
        loads[name] = f"load {time.perf_counter() - started:.1f} s, converting {encoder.conversion_seconds:.1f} s"
        runners[name] = lambda encoder=encoder: encoder.encode(texts)
    theirs = SentenceTransformer(str(model), device="cpu")
    runners["sentence-transformers torch fp32"] = lambda: theirs.encode(texts, batch_size=16)
    reference = runners["semsearch torch fp32"]()
    outputs = {name: run() for name, run in runners.items()}  # warm-up, and the outputs compared
    times: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for number in range(args.rounds):
        for name in names if number % 2 == 0 else names[::-1]:
            started = time.perf_counter()
            runners[name]()
            times[name].append(time.perf_counter() - started)
    if args.peer_python:
        peer = subprocess.run(
            [args.peer_python, str(Path(__file__).with_name("peer_openvino.py")), str(model), str(threads),
             str(args.rounds), json.dumps(texts, ensure_ascii=False)],
            capture_output=True, text=True,
        )  # fmt: skip
        if peer.returncode == 0:
            result = json.loads(peer.stdout.strip().splitlines()[-1])
            for name, row in result.items():
                times[name] = row["seconds"]
                outputs[name] = np.asarray(row["embeddings"], dtype=np.float32)
        else:
            print(f"peer failed: {peer.stderr.strip()[-500:]}")
    baseline = statistics.median(times["semsearch torch fp32"])
    print(f"{'runtime and precision':<44} {'tokens/s':>9} {'ratio':>6} {'min cos':>9} {'max abs':>9} {'of peak':>8}")
    for name, spent in times.items():
        median = statistics.median(spent)
        out = outputs[name]
        cos = float(((out * reference).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(reference, axis=1)).min())
        # bf16 rows (OpenVINO's default is bf16 on a CPU with native bf16) and int8 against the
        # bf16 peak (AMX's int8 peak is higher still), the rest against fp32's
        halves = ("bf16", "int8", "openvino default")
        peak = peaks["bf16"] if any(word in name for word in halves) else peaks["fp32"]
        share = real / median * flop / peak
        print(f"{name:<44} {real / median:>9.0f} {baseline / median:>5.2f}x {cos:>9.6f} "
              f"{float(np.abs(out - reference).max()):>9.2e} {share:>8.1%}"
              + (f"  ({loads[name]})" if name in loads else ""))  # fmt: skip
    return 0


def base_transformer(model: Path) -> Path:
    """The folder of a sentence-transformers model's transformer (its first stage)."""
    from semsearch.embedding.folder import read_stages

    return read_stages(model).transformer


def matmul_peak(dtype: str, threads: int) -> float:
    """FLOP/s of the best of five 2048^3 matmuls in ``dtype`` on ``threads`` threads: what the
    cores reach on the kernel transformers spend their time in (oneDNN; AMX where present)."""
    import torch

    torch.set_num_threads(threads)
    kind = torch.float32 if dtype == "fp32" else torch.bfloat16
    a, b = torch.randn(2048, 2048, dtype=kind), torch.randn(2048, 2048, dtype=kind)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * 2048**3 / best


def flop_per_token(config: object, mean_tokens: float, dense_out: int) -> float:
    """Forward FLOP per token of a BERT-like encoder: 2 per weight multiply (Q, K, V, output,
    the two feed-forward matrices), attention scores and mixing at ``mean_tokens``, and a Dense
    stage to ``dense_out``."""
    hidden, inner = config.hidden_size, config.intermediate_size  # type: ignore[attr-defined]
    per_layer = 2 * (4 * hidden * hidden + 2 * hidden * inner) + 2 * 2 * mean_tokens * hidden
    return config.num_hidden_layers * per_layer + 2 * hidden * dense_out  # type: ignore[attr-defined]


def _throughput(run: Callable[[], object]) -> float:
    run()
    started = time.perf_counter()
    run()
    return 1 / (time.perf_counter() - started)


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


if __name__ == "__main__":
    sys.exit(main())
