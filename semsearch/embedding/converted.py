"""The hand-assembled pipelines converted for OpenVINO, cached on disk, and run.

A pipeline (``pipeline.py``: transformer, pooling, Dense, Normalize; or a cross-encoder and its
activation) is converted once per model folder, OpenVINO version and weight precision, and kept
under the cache folder (``SEMSEARCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/semsearch``, else
``~/.cache/semsearch``) in ``openvino/<key>/``: the model (``model.xml``, ``model.bin``), the
tokenizer as sentence-transformers sets it up (``tokenizer.json``), and ``meta.json`` (the input
spec, the output's description, the sizes of the files, the graph's hash and a stamp of the model
folder's files), and OpenVINO's compiled form of it (``compiled/``, its own model cache).

Loading a converted model needs neither torch nor transformers: that is what makes a cold query
fast. An entry whose files do not match ``meta.json`` (a truncated copy, a crash, a changed
graph), that OpenVINO cannot load, or whose stamp differs from the folder (weights saved over,
same names) is converted again. Conversion happens
in a private folder renamed into place under a file lock, so two processes converting at once
leave one good entry, and a reader never sees a half-written one.

float32 and bfloat16 share one entry (bfloat16 is a compile setting on CPUs that compute it
natively); int8 has its own, its weights and activations quantised by NNCF over a calibration
set of mixed Chinese and English passages shipped with semsearch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConversionError, ModelLoadError
from .hub import model_files
from .inputs import InputSpec

if TYPE_CHECKING:
    from .pipeline import Assembled

FORMAT = 1  # bump when what is converted or saved changes: older entries are converted again
_FILES = ("model.xml", "model.bin", "tokenizer.json")
_CALIBRATION = Path(__file__).with_name("calibration.txt")


@dataclass
class Converted:
    """A converted pipeline, loaded."""

    runner: OpenVINORunner
    spec: InputSpec
    tokenizer: str  # the tokenizers backend, as JSON
    meta: dict[str, Any]
    path: Path
    conversion_seconds: float  # 0.0 when the cache already held it
    precision: str  # what it runs at: "auto" resolved


# "auto" runs bfloat16 only where this model keeps this close to float32 (measured at conversion)
BF16_MIN_COSINE = 0.9999  # an encoder: the least cosine of any calibration passage's embedding
BF16_MAX_SHIFT = 0.01  # a reranker: the largest score change, as a share of the scores' range


def cache_root() -> Path:
    """Where converted models are kept."""
    if os.environ.get("SEMSEARCH_CACHE_DIR"):
        return Path(os.environ["SEMSEARCH_CACHE_DIR"]) / "openvino"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "semsearch" / "openvino"


def load(
    kind: str,
    folder: Path,
    fingerprint: str,
    precision: str,
    assemble: Callable[[], Assembled],
    *,
    threads: int | None = None,
    progress: bool | None = None,
) -> Converted:
    """The converted ``kind`` ("encoder" or "reranker") of ``folder`` at ``precision``, from the
    cache, or converted now from ``assemble()`` (imports torch) and cached. ``precision`` "auto"
    is bfloat16 where the CPU computes it natively and the conversion measured this model close
    enough to float32 in it (``BF16_MIN_COSINE``, ``BF16_MAX_SHIFT``), else float32."""
    import openvino

    from .precision import native_bf16

    weights = "int8" if precision == "int8" else "fp32"
    key = _key(kind, folder, fingerprint, openvino.__version__, weights)
    entry = cache_root() / key
    stamp = _stamp(folder)
    started = time.perf_counter()
    meta = _valid(entry, stamp)
    converted = False
    if meta is None:
        from filelock import FileLock

        entry.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(entry.parent / f"{key}.lock")):
            meta = _valid(entry, stamp)  # another process may have converted it meanwhile
            if meta is None:
                meta = _convert(entry, assemble, weights, stamp, progress)
                converted = True
    ran = precision
    if precision == "auto":
        ran = "bf16" if native_bf16() and meta.get("bf16_faithful") else "fp32"
    try:
        runner = OpenVINORunner(entry, ran, threads)
    except RuntimeError as exc:  # same sizes, damaged contents: convert once more
        if converted:
            raise ModelLoadError(f"OpenVINO cannot load the model it converted in {entry}: {exc}") from exc
        _discard(entry)
        return load(kind, folder, fingerprint, precision, assemble, threads=threads, progress=progress)
    return Converted(
        runner=runner,
        spec=InputSpec.from_dict(meta["spec"]),
        tokenizer=(entry / "tokenizer.json").read_text(encoding="utf-8"),
        meta=meta["output"],
        path=entry,
        conversion_seconds=time.perf_counter() - started if converted else 0.0,
        precision=ran,
    )


class OpenVINORunner:
    """Runs a converted pipeline with OpenVINO on the CPU. One batch at a time (a lock keeps
    threads apart: an infer request is not thread-safe)."""

    runtime = "openvino"
    device = "cpu"

    def __init__(self, entry: Path, precision: str, threads: int | None = None) -> None:
        import openvino

        from .precision import native_bf16

        self.precision = precision
        core = openvino.Core()
        # the compiled form is cached beside the model: a later process loads it in a fraction
        # of the time compiling takes
        core.set_property({"CACHE_DIR": str(entry / "compiled")})
        half = precision == "bf16" or (precision == "int8" and native_bf16())
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": "bf16" if half else "f32",
            "PERFORMANCE_HINT": "LATENCY",
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self._compiled = core.compile_model(str(entry / "model.xml"), "CPU", config)
        self._request = self._compiled.create_infer_request()
        self._lock = threading.Lock()

    def run(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """The model's float32 output for a batch of int64 input arrays."""
        with self._lock:
            result = self._request.infer(arrays)
            return np.array(result[0], dtype=np.float32)


def _key(kind: str, folder: Path, fingerprint: str, version: str, weights: str) -> str:
    what = [kind, str(folder.resolve()), fingerprint, version, weights, FORMAT]
    return f"{kind}-{hashlib.sha256(json.dumps(what).encode()).hexdigest()[:20]}"


def _stamp(folder: Path) -> list[list[Any]]:
    """Each file of the model folder: name, size and modification time. Weights saved over with
    the same names and sizes (the fingerprint's blind spot) change it."""
    return [[p.relative_to(folder).as_posix(), (s := p.stat()).st_size, s.st_mtime_ns] for p in model_files(folder)]


def _valid(entry: Path, stamp: list[list[Any]]) -> dict[str, Any] | None:
    """The entry's meta where the entry is whole and made from the folder as it is now."""
    try:
        meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT or meta.get("stamp") != stamp:
            return None
        for name, size in meta["sizes"].items():
            if (entry / name).stat().st_size != size:
                return None
        if _digest(entry / "model.xml") != meta["xml_sha256"]:  # small: hashed on every load
            return None
        return dict(meta)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _convert(
    entry: Path, assemble: Callable[[], Assembled], weights: str, stamp: list[list[Any]], progress: bool | None
) -> dict[str, Any]:
    """Convert into a private folder, then rename it into place (the caller holds the lock)."""
    import openvino
    import torch
    from tqdm.auto import tqdm

    from ..config import tqdm_disable
    from .precision import native_bf16

    steps = (
        ["assembling", "converting", "quantising", "saving"]
        if weights == "int8"
        else ["assembling", "converting", "saving"]
    )
    bar = tqdm(
        total=len(steps),
        desc="Converting the model for OpenVINO (once)",
        unit="step",
        disable=tqdm_disable(progress),
        bar_format="{desc}: {n}/{total} {postfix}",
    )
    work = entry.with_name(f".{entry.name}.{os.getpid()}.{threading.get_ident()}")
    shutil.rmtree(work, ignore_errors=True)
    try:
        with bar:
            bar.set_postfix_str(steps[0])
            assembled = assemble()
            bar.update()
            bar.set_postfix_str(steps[1])
            # positional, in the order forward() takes them; the ports are then named by position
            arrays = _example(assembled)
            order = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in arrays]
            example = tuple(torch.from_numpy(arrays[name]) for name in order)
            try:
                # tracing warns of Python branches on shapes (transformers' mask code): the
                # parity tests, in batches of other shapes and paddings, are what answers them
                with torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = openvino.convert_model(assembled.module, example_input=example)
            except Exception as exc:  # the converter raises many types for an op it lacks
                raise ConversionError(f"OpenVINO cannot convert this model: {type(exc).__name__}: {exc}") from exc
            if len(model.inputs) != len(order):
                raise ModelLoadError(f"OpenVINO converted the model with {len(model.inputs)} inputs, not {len(order)}")
            for port, name in zip(model.inputs, order, strict=True):
                port.get_tensor().set_names({name})
            bar.update()
            if weights == "int8":
                bar.set_postfix_str(steps[2])
                model = _quantise(model, assembled)
                bar.update()
            fidelity = _bf16_fidelity(model, assembled) if weights == "fp32" and native_bf16() else {}
            bar.set_postfix_str(steps[-1])
            work.mkdir(parents=True)
            openvino.save_model(model, str(work / "model.xml"), compress_to_fp16=False)
            (work / "tokenizer.json").write_text(assembled.tokenizer, encoding="utf-8")
            meta = {
                "format": FORMAT,
                "weights": weights,
                "openvino": openvino.__version__,
                "spec": assembled.spec.to_dict(),
                "output": assembled.meta,
                "stamp": stamp,
                **fidelity,
                "sizes": {name: (work / name).stat().st_size for name in _FILES},
                "xml_sha256": _digest(work / "model.xml"),
            }
            _write_synced(work / "meta.json", json.dumps(meta, ensure_ascii=False))
            for file in _FILES:
                _fsync(work / file)
            _discard(entry)
            os.rename(work, entry)
            bar.update()
        return meta
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _bf16_fidelity(model: Any, assembled: Assembled) -> dict[str, Any]:
    """How far bfloat16 moves this model's outputs from float32 (PyTorch's), over 16 of the
    calibration passages, and whether that is within what ``auto`` accepts."""
    import openvino
    import torch

    compiled = openvino.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})
    shifts = []
    for arrays in _calibration(assembled)[:16]:
        with torch.inference_mode():
            reference = assembled.module(**{k: torch.from_numpy(v) for k, v in arrays.items()}).float().numpy()
        ours = np.asarray(compiled(arrays)[0], dtype=np.float32)
        shifts.append((reference.ravel(), ours.ravel()))
    if assembled.pairs:
        reference = np.concatenate([r for r, _ in shifts])
        ours = np.concatenate([o for _, o in shifts])
        shift = float(np.abs(ours - reference).max() / max(float(np.ptp(reference)), 1e-9))
        return {"bf16_max_shift": shift, "bf16_faithful": shift <= BF16_MAX_SHIFT}
    cosines = [float(r @ o / max(np.linalg.norm(r) * np.linalg.norm(o), 1e-30)) for r, o in shifts]
    return {"bf16_min_cosine": min(cosines), "bf16_faithful": min(cosines) >= BF16_MIN_COSINE}


def _calibration(assembled: Assembled) -> list[dict[str, np.ndarray]]:
    """The calibration passages as one-row inputs (pairs of neighbours for a cross-encoder)."""
    _, inputs = assembled.spec.tokenizers(assembled.tokenizer)
    lines = _CALIBRATION.read_text(encoding="utf-8").splitlines()
    texts = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if assembled.pairs:  # a cross-encoder reads (query, passage): each passage with the one before
        encodings = inputs.encode_batch(list(zip(texts, texts[1:], strict=False)))
    else:
        encodings = inputs.encode_batch(texts)
    return [assembled.spec.arrays([encoding], len(encoding)) for encoding in encodings]


def _example(assembled: Assembled) -> dict[str, np.ndarray]:
    """Inputs to trace the module with: two rows of different lengths, so one is padded (a trace
    of unpadded rows may leave out the attention mask's path)."""
    _, inputs = assembled.spec.tokenizers(assembled.tokenizer)
    texts = ["semsearch 把文件夹变成可以提问的索引，中文优先。", "索引"]
    encodings = inputs.encode_batch(list(zip(texts, texts[::-1], strict=True)) if assembled.pairs else texts)
    return assembled.spec.arrays(encodings, max(len(e) for e in encodings))


def _quantise(model: Any, assembled: Assembled) -> Any:
    """int8 weights and activations (NNCF's post-training quantisation for transformers),
    calibrated on the passages in calibration.txt."""
    import nncf

    samples = _calibration(assembled)
    return nncf.quantize(
        model,
        nncf.Dataset(samples),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(samples),
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _discard(entry: Path) -> None:
    """Remove an entry: first out of the way by a rename, so no reader sees it half-deleted."""
    if not entry.exists():
        return
    gone = entry.with_name(f".{entry.name}.gone.{os.getpid()}")
    os.rename(entry, gone)
    shutil.rmtree(gone, ignore_errors=True)


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())


def _fsync(path: Path) -> None:
    with open(path, "rb") as file:
        os.fsync(file.fileno())
