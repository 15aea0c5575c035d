"""What the encoder and the reranker share at run time: picking the device, moving host arrays
to it, and cutting length-sorted inputs into batches within a token budget."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import InvalidOptionError

if TYPE_CHECKING:
    import torch

MAX_ROWS = 512  # inputs in one batch at most, however short


def pick_device(device: str) -> str:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``, checked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidOptionError(f"Device {device!r} was asked for but CUDA is not available; use --device cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise InvalidOptionError(f"Unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    return device


def to_device(array: np.ndarray, device: str) -> torch.Tensor:
    """A host array as a tensor on ``device``; through pinned memory, without blocking, to a GPU."""
    import torch

    tensor = torch.from_numpy(array)
    return tensor.pin_memory().to(device, non_blocking=True) if device.startswith("cuda") else tensor


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
