"""Which engine runs a model, on which device, at which precision: ``--device``,
``--runtime`` and ``--precision`` resolved, without importing torch where no GPU is in sight.

On CUDA the model runs in PyTorch, in float16 unless asked otherwise (as before). On the CPU,
``auto`` runs the model converted for OpenVINO where ``semsearch[cpu]`` is installed, else in
PyTorch; and the precision ``auto`` is bfloat16 where the CPU computes it natively (OpenVINO's
own default precision there: AVX-512 BF16 or AMX) and the model measured faithful in it at
conversion (``converted.py``), float32 elsewhere. int8 is never chosen by
``auto``; it is offered on OpenVINO only (see docs/benchmarks.md for what it costs in retrieval).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidOptionError

RUNTIMES = ("auto", "torch", "openvino")
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")


@dataclass(frozen=True)
class Choice:
    """A resolved ``--device``, ``--runtime`` and ``--precision``."""

    device: str  # cpu, cuda, cuda:N
    runtime: str  # torch or openvino
    precision: str  # fp32, fp16, bf16 or int8 (auto on OpenVINO until the model is loaded)
    # the runtime was auto's choice, not asked for: PyTorch may stand in for it
    chosen: bool = field(default=False, compare=False)

    def instead(self) -> Choice:
        """PyTorch float32 on the CPU: what stands in where OpenVINO cannot convert a model."""
        return Choice(self.device, "torch", "fp32")

    def describe(self) -> str:
        """E.g. "openvino bf16 on cpu"; an unresolved auto says what it will be."""
        if self.precision != "auto":
            return f"{self.runtime} {self.precision} on {self.device}"
        if native_bf16():
            return f"{self.runtime} auto on {self.device} (bf16 where the model stays within cosine 0.9999 of fp32)"
        return f"{self.runtime} auto on {self.device} (fp32: this CPU has no native bf16)"


def choose(device: str = "auto", runtime: str = "auto", precision: str = "auto") -> Choice:
    """Resolve the three options (``SEMSEARCH_RUNTIME`` and ``SEMSEARCH_PRECISION`` stand in for
    an ``auto`` runtime and precision), refusing combinations no engine runs."""
    if runtime not in RUNTIMES:
        raise InvalidOptionError(f"Unknown runtime {runtime!r}; use {', '.join(RUNTIMES)}")
    if precision not in PRECISIONS:
        raise InvalidOptionError(f"Unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
    runtime = _setting("SEMSEARCH_RUNTIME", runtime, RUNTIMES)
    precision = _setting("SEMSEARCH_PRECISION", precision, PRECISIONS)
    if runtime == "openvino" and device == "auto":
        device = "cpu"  # OpenVINO runs the model on the CPU here
    device = pick_device(device)
    if device.startswith("cuda"):
        if runtime == "openvino":
            raise InvalidOptionError("--runtime openvino runs on the CPU; use --device cpu, or --runtime torch")
        if precision == "int8":
            raise InvalidOptionError("--precision int8 runs on the CPU with --runtime openvino; on CUDA use fp16")
        return Choice(device, "torch", "fp16" if precision == "auto" else precision)
    chosen = runtime == "auto"
    if chosen:
        runtime = "openvino" if openvino_installed() else "torch"
    if runtime == "openvino" and not openvino_installed():
        raise InvalidOptionError(
            "--runtime openvino needs OpenVINO: pip install 'semsearch[cpu]' (or use --runtime torch)"
        )
    if precision == "fp16":
        raise InvalidOptionError("--precision fp16 is for CUDA; on the CPU use auto, fp32, bf16 or int8")
    if precision == "int8" and importlib.util.find_spec("nncf") is None:
        raise InvalidOptionError("--precision int8 needs NNCF to quantise the model: pip install 'semsearch[int8]'")
    if runtime == "torch":
        if precision == "int8":
            raise InvalidOptionError("--precision int8 needs --runtime openvino (pip install 'semsearch[cpu]')")
        return Choice("cpu", "torch", "fp32" if precision == "auto" else precision)
    # auto stays auto here: the converted model says whether bfloat16 keeps it faithful
    # (converted.load resolves it to bf16 or fp32)
    return Choice("cpu", "openvino", precision, chosen=chosen)


def pick_device(device: str) -> str:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``, checked. ``auto`` imports
    torch only where an NVIDIA GPU may be present, so a CPU-only query does not pay for it."""
    if device == "auto":
        if not _gpu_in_sight():
            return "cpu"
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if device != "cpu" and not device.startswith("cuda"):
        raise InvalidOptionError(f"Unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InvalidOptionError(f"Device {device!r} was asked for but CUDA is not available; use --device cpu")
    return device


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


@functools.cache
def native_bf16() -> bool:
    """Whether the CPU computes bfloat16 natively: OpenVINO's CPU plugin then makes bf16 its own
    default precision (AVX-512 BF16 or AMX); elsewhere it would emulate it, slower than fp32."""
    import openvino

    return bool(openvino.Core().get_property("CPU", "INFERENCE_PRECISION_HINT") == openvino.Type.bf16)


def _setting(variable: str, value: str, allowed: tuple[str, ...]) -> str:
    if value != "auto":
        return value
    chosen = os.environ.get(variable, "auto").strip().lower() or "auto"
    if chosen not in allowed:
        raise InvalidOptionError(f"{variable}={chosen!r} is not one of {', '.join(allowed)}")
    return chosen


def _gpu_in_sight() -> bool:
    # CUDA_VISIBLE_DEVICES="" or "-1" hides every GPU; an NVIDIA driver shows itself on Linux in
    # /proc and /dev, elsewhere by nvidia-smi on the PATH. A false "yes" costs only the torch import.
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    if Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists():
        return True
    return shutil.which("nvidia-smi") is not None
