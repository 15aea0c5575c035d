"""What the encoder and the reranker share at run time: picking the device, moving host arrays
to it, and cutting length-sorted inputs into batches within a token budget."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

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


def padded_inputs(
    encodings: list[Any], width: int, tokenizer: Any, names: Sequence[str], device: str
) -> dict[str, torch.Tensor]:
    """A model's inputs ``names`` for ``encodings`` (tokenizers' Encoding) as (rows, width)
    tensors on ``device``, padded as ``tokenizer`` pads: on its padding side, with its pad id and
    pad type id."""
    ids = np.full((len(encodings), width), tokenizer.pad_token_id or 0, dtype=np.int64)
    types = np.full_like(ids, tokenizer.pad_token_type_id)
    mask = np.zeros_like(ids)
    left = tokenizer.padding_side == "left"
    for row, encoding in enumerate(encodings):
        cells = slice(width - len(encoding), width) if left else slice(0, len(encoding))
        ids[row, cells] = encoding.ids
        types[row, cells] = encoding.type_ids
        mask[row, cells] = 1
    arrays = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
    return {name: to_device(arrays[name], device) for name in names}


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
