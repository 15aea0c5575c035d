"""What the encoder and the reranker share at run time: loading an assembled pipeline on the
engine a ``Choice`` names, and cutting length-sorted inputs into batches within a token budget."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConversionError
from .inputs import InputSpec

if TYPE_CHECKING:
    from .pipeline import Assembled
    from .precision import Choice

MAX_ROWS = 512  # inputs in one batch at most, however short


@dataclass
class Loaded:
    """A pipeline ready to run, and what its inputs and outputs need."""

    runner: Any  # pipeline.TorchRunner or converted.OpenVINORunner: run(arrays) -> float32 array
    spec: InputSpec
    tokenizer: str  # the tokenizers backend, as JSON
    meta: dict[str, Any]  # dimension, dense, activation, ...
    choice: Choice  # what runs it, its precision resolved
    conversion_seconds: float  # converting for OpenVINO in this load; 0.0 when cached or in PyTorch


def load_pipeline(
    kind: str,
    folder: Path,
    fingerprint: str,
    choice: Choice,
    assemble: Callable[[bool], Assembled],
    *,
    threads: int | None = None,
    progress: bool | None = None,
) -> Loaded:
    """The ``kind`` ("encoder" or "reranker") pipeline of ``folder`` on ``choice``'s engine:
    converted for OpenVINO (from the cache, or now from ``assemble(True)``), else assembled in
    PyTorch (``assemble(False)``). Where OpenVINO cannot convert a model that ``auto`` chose it
    for, PyTorch float32 stands in, with a warning; asked for by name, it is the error."""
    if choice.runtime == "openvino":
        from . import converted

        try:
            saved = converted.load(
                kind, folder, fingerprint, choice.precision, lambda: assemble(True), threads=threads, progress=progress
            )
        except ConversionError as exc:
            if not choice.chosen:
                raise
            warnings.warn(f"{exc}; running it in PyTorch float32", stacklevel=3)
            choice = choice.instead()
        else:
            resolved = replace(choice, precision=saved.precision)
            return Loaded(saved.runner, saved.spec, saved.tokenizer, saved.meta, resolved, saved.conversion_seconds)
    from .pipeline import TorchRunner

    assembled = assemble(False)
    runner = TorchRunner(assembled.module, choice.device, choice.precision)
    return Loaded(runner, assembled.spec, assembled.tokenizer, assembled.meta, choice, 0.0)


def token_batches(lengths: np.ndarray, budget: int, max_rows: int) -> list[tuple[int, int]]:
    """(first, last) ranges over ``lengths`` (sorted longest first) whose padded size, rows times
    the first row's length, stays within ``budget`` (a single row may exceed it)."""
    batches: list[tuple[int, int]] = []
    first = 0
    while first < len(lengths):
        rows = max(1, min(max_rows, budget // max(1, int(lengths[first]))))
        batches.append((first, min(first + rows, len(lengths))))
        first += rows
    return batches
