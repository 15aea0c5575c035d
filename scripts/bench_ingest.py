"""End-to-end ingest against the pure encoder, on the Chinese novels in ../shared/data.

    python scripts/bench_ingest.py [--model DIR | --shape tiny|full] [--device cpu|cuda]
                                   [--chars 2000000] [--file-chars 20000] [--rounds 3] [--threads N]
                                   [--accelerator TOKENS_PER_S]

Splits the novels into files of --file-chars characters (--chars in all), ingests them into a new
index, and reports files/s, chunks/s and real tokens/s, where the time went by stage (reading and
chunking, which run in a background thread; embedding; committing to SQLite; the vector index),
and the ratio of ingest tokens/s to the encoder's own tokens/s on the same chunks (the target is at
least 80%). Ingest and the bare encoder alternate for --rounds rounds; medians are reported. Stages are timed by
wrapping semsearch's functions, so nothing in the library changes for the benchmark. On a CPU,
--threads 1 leaves the background chunking a core of its own, as a GPU machine's spare cores do.

--accelerator N stands in for a GPU where there is none: the model's forward pass is replaced by
a wait of (padded tokens / N) seconds that leaves the CPU free, as a GPU kernel does, and random
vectors of the model's size. Everything else runs for real: tokenizing, batching, chunking,
SQLite, FAISS. So it measures whether the pipeline keeps an accelerator of that speed busy
(e.g. 500000 for xiaobu's shape on an H100 in fp16); it says nothing about the model's own speed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOVELS = ROOT.parent / "shared" / "data" / "zh-novels"
sys.path.insert(0, str(ROOT / "tests"))

from modelfactory import build_shape  # noqa: E402

spent: dict[str, float] = defaultdict(float)
READ = "read, decode, chunk"
TOKENIZE = "tokenize for the model"


def timed(owner: Any, name: str, stage: str) -> None:
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[stage] += time.perf_counter() - started

    setattr(owner, name, wrapper)


def make_files(folder: Path, chars: int, file_chars: int) -> int:
    sources = sorted(NOVELS.glob("*.txt"))
    if not sources:
        sys.exit(f"no novels in {NOVELS}")
    text = "".join(p.read_text(encoding="utf-8") for p in sources)[:chars]
    folder.mkdir(parents=True)
    for number, start in enumerate(range(0, len(text), file_chars)):
        (folder / f"{number:05d}.txt").write_text(text[start : start + file_chars], encoding="utf-8")
    return number + 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--shape", choices=["tiny", "full"], default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--chars", type=int, default=None)
    parser.add_argument("--file-chars", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--accelerator", type=float, default=None, help="simulated model speed, tokens/s")
    parser.add_argument("--runtime", default="auto", help="auto, torch or openvino (CPU)")
    parser.add_argument("--precision", default="auto", help="auto, fp32, fp16, bf16 or int8")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    import semsearch
    import semsearch.index.ingest as ingest_module
    from semsearch.embedding.encoder import Encoder
    from semsearch.storage.store import Store
    from semsearch.storage.vectors import FaissIndex

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    gpu = args.device.startswith("cuda") or (args.device == "auto" and _cuda())
    model = args.model or build_shape(work, args.shape or ("full" if gpu else "tiny"))
    files = make_files(work / "corpus", args.chars or (20_000_000 if gpu else 1_000_000), args.file_chars)
    timed(ingest_module, "read", READ)
    timed(ingest_module, "cut", READ)
    if args.accelerator:
        simulate_accelerator(args.accelerator)
    timed(Encoder, "encode_tokenized", "embed")
    timed(Encoder, "tokenize", TOKENIZE)
    timed(Store, "put_document", "SQLite writes")
    timed(Store, "stage", "SQLite writes")
    timed(FaissIndex, "add", "vector index")
    timed(FaissIndex, "save", "vector index")
    ingest_runs, encoder_runs = [], []
    for round_number in range(args.rounds):  # alternating, so drifts in machine speed hit both
        index = semsearch.open_index(
            work / f"index-{round_number}",
            model=str(model),
            device=args.device,
            runtime=args.runtime,
            precision=args.precision,
        )
        encoder = index.encoder  # loaded before the clock starts, as in a warm process
        spent.clear()
        started = time.perf_counter()
        report = index.ingest([work / "corpus"])
        ingest_runs.append(time.perf_counter() - started)
        during_ingest = dict(spent)
        texts = [row[0] for row in index.handle.store.db.execute("SELECT text FROM chunks")]
        started = time.perf_counter()
        encoder.encode(texts)
        encoder_runs.append(time.perf_counter() - started)
        index.close()
    tokens = sum(len(e) for e in encoder.tokenize_documents(texts))
    seconds, encoder_seconds = statistics.median(ingest_runs), statistics.median(encoder_runs)
    print(
        f"{files} files, {report.chunks_total} chunks, {tokens} real tokens; {encoder.choice.describe()}, "
        f"torch threads {torch.get_num_threads()}; model {model}"
    )
    print(f"median of {args.rounds} rounds, ingest and encoder alternating")
    print(
        f"ingest: {seconds:.1f} s = {files / seconds:.1f} files/s, {report.chunks_total / seconds:.1f} chunks/s, "
        f"{tokens / seconds:.0f} tokens/s"
    )
    print(f"encoder alone on the same chunks: {encoder_seconds:.1f} s = {tokens / encoder_seconds:.0f} tokens/s")
    ratios = ", ".join(f"{e / i:.0%}" for i, e in zip(ingest_runs, encoder_runs, strict=True))
    print(f"ingest / encoder tokens/s: {encoder_seconds / seconds:.0%} (rounds: {ratios})")
    seconds = ingest_runs[-1]  # the stage shares below are the last round's
    print("busy time by stage, as a share of the ingest's wall time (reading, chunking and tokenizing run")
    print("in a background thread, overlapping the rest, so the shares add up to more than 100%), last round:")
    main_thread = 0.0
    for stage, value in during_ingest.items():
        main_thread += value if stage not in (READ, TOKENIZE) else 0.0
        print(f"  {stage:<22} {value:>7.1f} s {value / seconds:>6.1%}")
    other = seconds - main_thread
    print(f"  {'other, main thread':<22} {other:>7.1f} s {other / seconds:>6.1%}  (waiting for chunks, bookkeeping)")
    return 0


def simulate_accelerator(tokens_per_second: float) -> None:
    """Replace the model's run, in either engine, with a GIL-free wait for its padded tokens, and
    random vectors (of the encoder's size: set by the first real call's shape)."""
    import numpy as np

    from semsearch.embedding.converted import OpenVINORunner
    from semsearch.embedding.pipeline import TorchRunner

    for runner in (TorchRunner, OpenVINORunner):
        real = runner.run
        sizes: dict[int, int] = {}

        def run(self: Any, arrays: dict[str, Any], real: Any = real, sizes: dict[int, int] = sizes) -> Any:
            if id(self) not in sizes:
                sizes[id(self)] = real(self, {k: v[:1, :2] for k, v in arrays.items()}).shape[1]
            mask = arrays["attention_mask"]
            time.sleep(mask.size / tokens_per_second)
            return np.random.rand(len(mask), sizes[id(self)]).astype(np.float32)

        runner.run = run  # type: ignore[method-assign]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
