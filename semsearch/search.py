"""One search request (``Query``) and the candidate lists it draws from, filters applied.

A filter (``filters.Where``) narrows the documents first; the dense and lexical candidates are
then drawn from those documents only, so a filter never leaves fewer than k hits while more
match. The lexical side filters inside its SQL. The dense side asks the vector index for more
neighbours than it needs, drops those outside the filter and asks again, deeper, while too few
are left; a narrow filter (or an approximate index that runs dry) is answered exactly instead,
from the stored vectors of the chunks it allows.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from .errors import InvalidOptionError, InvalidQueryError
from .filters import Where, to_sql
from .ranking import DEFAULT_MODE, MODES, RRF_K
from .store import Store
from .vectors import VectorIndex, normalize

# Search a filtered set exactly while it holds fewer floats than this (16 MB to read and score)
EXACT_FLOATS = 4_000_000
OVERFETCH = 2.0  # ask the vector index for this many times the neighbours a filter should leave

Candidates = list[tuple[int, float]]  # (chunk id, score), best first


@dataclass(frozen=True)
class Query:
    """One search: the ``k`` best passages for ``text`` in ``mode``, among the documents
    ``where`` allows, each with ``context`` neighbouring chunks either side merged in.
    ``min_score`` drops hits scoring below it; ``rrf_k`` is hybrid fusion's constant."""

    text: str
    k: int = 10
    mode: str = DEFAULT_MODE
    where: Where | None = None
    context: int = 0
    min_score: float | None = None
    rrf_k: int = RRF_K

    def check(self) -> None:
        """Raise InvalidOptionError / InvalidQueryError for a query that cannot run."""
        if not isinstance(self.text, str) or not self.text.strip():
            raise InvalidQueryError("The query is empty")
        if self.k < 1:
            raise InvalidOptionError("k must be at least 1")
        if self.mode not in MODES:
            raise InvalidOptionError(f"Unknown search mode {self.mode!r}; use one of {', '.join(MODES)}")
        if self.rrf_k < 1:
            raise InvalidOptionError("rrf_k must be at least 1")
        if self.context < 0:
            raise InvalidOptionError("context must be at least 0")

    @property
    def dense(self) -> bool:
        return self.mode != "lexical"

    @property
    def lexical(self) -> bool:
        return self.mode != "dense"


@dataclass(frozen=True)
class Scope:
    """The documents a filter lets through, and how many chunks they hold."""

    documents: list[int]
    chunks: int


def scope(store: Store, where: Where | None, base: str) -> Scope | None:
    """What ``where`` lets through; None when that is every document."""
    if where is None or where.empty:
        return None
    condition, params = to_sql(where, base)
    found, chunks, total = store.matching_documents(condition, params)
    return None if len(found) == total else Scope(found, chunks)


def dense_candidates(
    vectors: VectorIndex, store: Store, embedded: np.ndarray, depth: int, within: Scope | None
) -> list[Candidates]:
    """The ``depth`` chunks nearest each embedded query by cosine, among the chunks of the
    documents ``within`` allows (None: all)."""
    size = len(vectors)
    if not size or (within is not None and not within.chunks):
        return [[] for _ in embedded]
    if within is None:
        return _rows(*vectors.search(embedded, depth), depth=depth)
    if within.chunks * vectors.dimension <= EXACT_FLOATS:
        return exact(store, vectors.dimension, embedded, depth, store.chunk_ids_in(within.documents))
    wanted = min(depth, within.chunks)
    fetch = min(size, math.ceil(depth * OVERFETCH * size / within.chunks))
    while True:
        scores, ids = vectors.search(embedded, fetch)
        allowed = store.chunks_among(np.unique(ids[ids >= 0]).tolist(), within.documents)
        found = _rows(scores, ids, depth=depth, allowed=allowed)
        short = [i for i, row in enumerate(found) if len(row) < wanted]
        if not short or fetch >= min(size, vectors.max_k):
            break
        fetch = min(size, vectors.max_k, fetch * 4)
    if short:  # an approximate index ran out of allowed neighbours: score those queries exactly
        every = store.chunk_ids_in(within.documents)
        for i, row in zip(short, exact(store, vectors.dimension, embedded[short], depth, every), strict=True):
            found[i] = row
    return found


def _rows(scores: np.ndarray, ids: np.ndarray, *, depth: int, allowed: set[int] | None = None) -> list[Candidates]:
    return [
        [(int(i), float(s)) for s, i in zip(row_s, row_i, strict=True) if i >= 0 and (allowed is None or i in allowed)][
            :depth
        ]
        for row_s, row_i in zip(scores, ids, strict=True)
    ]


def exact(store: Store, dimension: int, embedded: np.ndarray, depth: int, ids: np.ndarray) -> list[Candidates]:
    """The ``depth`` best of the chunks ``ids`` for each query, scored exactly from the vectors
    stored in SQLite, read in batches so memory stays bounded."""
    queries = normalize(np.asarray(embedded, dtype=np.float32))
    best: list[list[tuple[float, int]]] = [[] for _ in queries]
    for chunk_ids, matrix in store.iter_vectors(dimension, ids.tolist()):
        scores = queries @ normalize(matrix).T
        for row, heap in zip(scores, best, strict=True):
            top = np.argsort(-row, kind="stable")[:depth]
            for position in top:
                item = (float(row[position]), -int(chunk_ids[position]))
                if len(heap) < depth:
                    heapq.heappush(heap, item)
                elif item > heap[0]:
                    heapq.heapreplace(heap, item)
    return [[(-negated, score) for score, negated in sorted(heap, reverse=True)] for heap in best]
