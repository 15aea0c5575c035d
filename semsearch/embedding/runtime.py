"""What the encoder and the reranker share at run time: cutting length-sorted inputs into
batches within a token budget."""

from __future__ import annotations

import numpy as np

MAX_ROWS = 512  # inputs in one batch at most, however short


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
