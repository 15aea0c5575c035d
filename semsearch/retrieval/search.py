"""Ranking queries (``rank``) over any backend: the dense and lexical candidates it gives,
fusion, hits and context passages; and the local backend's filtered dense search.

A filter (``query.Where``) narrows the documents first; the dense and lexical candidates are
then drawn from those documents only, so a filter never leaves fewer than k hits while more
match. Locally the lexical side filters inside its SQL. The dense side asks FAISS for more
neighbours than it needs, drops those outside the filter and asks again, deeper, while too few
are left; a narrow filter (or an approximate index that runs dry) is answered exactly instead,
from the stored vectors of the chunks it allows.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..query import Query, Where
from ..results import Hit
from ..storage.rows import ChunkRow
from ..storage.store import Store
from ..storage.vectors import FaissIndex, normalize
from . import passages
from .ranking import HYBRID_DEPTH, Scorer, fuse, rerank, single, to_hits

# Search a filtered set exactly while it holds fewer floats than this (16 MB to read and score)
EXACT_FLOATS = 4_000_000
OVERFETCH = 2.0  # ask the vector index for this many times the neighbours a filter should leave

Candidates = list[tuple[int, float]]  # (chunk id, score), best first


@dataclass(frozen=True)
class Scope:
    """The documents a filter lets through, and how many chunks they hold."""

    documents: list[int]
    chunks: int


class Source(Protocol):
    """What ranking reads from a backend (``index.backend.Backend`` is one)."""

    def dense(self, embedded: np.ndarray, depth: int, where: Where | None, base: str) -> list[Candidates]: ...
    def lexical(self, text: str, depth: int, where: Where | None, base: str) -> Candidates: ...
    def chunks(self, ids: Sequence[int]) -> Mapping[int, ChunkRow]: ...
    def neighbours(self, windows: Sequence[tuple[int, int, int]]) -> list[ChunkRow]: ...
    def passes(self, where: Where, base: str) -> bool: ...
    def suffixes(self) -> list[str]: ...


def rank(
    source: Source,
    queries: Sequence[Query],
    embedded: Mapping[str, np.ndarray],
    base: str,
    rerankers: Mapping[str, Scorer] | None = None,
) -> list[list[Hit]]:
    """The hits of each query from ``source`` (read inside one consistent state of it):
    ``embedded`` holds each dense query's vector, ``base`` is the folder relative path filters
    start from, ``rerankers`` the scorer of each reranker a query names. Dense queries with the
    same filter are searched together. A reranked query's first ``query.depth`` candidates are
    rescored before its hits are cut to k and widened."""
    dense = _dense_all(source, queries, embedded, base)
    rankings = []
    for query, found in zip(queries, dense, strict=True):
        lexical = source.lexical(query.text, _depth(query), query.where, base) if query.lexical else []
        both = query.dense and query.lexical
        rankings.append(fuse(found, lexical, query.rrf_k) if both else single(found or lexical, lexical=query.lexical))
    rows = source.chunks(sorted({r.chunk_id for ranking in rankings for r in ranking}))
    for number, query in enumerate(queries):
        if query.rerank is not None:
            scorer = (rerankers or {})[query.rerank]
            rankings[number] = rerank(rankings[number], rows, query.text, query.depth, scorer)
    hits = [to_hits(r, rows, q.text, q.k, q.min_score) for r, q in zip(rankings, queries, strict=True)]
    return [_widen(source, q, h, rows) if q.context else h for q, h in zip(queries, hits, strict=True)]


def _depth(query: Query) -> int:
    """Candidates a query takes from each list: k (the reranking depth when reranked), or more
    to fuse two lists."""
    wanted = query.depth if query.rerank is not None else query.k
    return max(wanted, HYBRID_DEPTH) if query.dense and query.lexical else wanted


def _dense_all(
    source: Source, queries: Sequence[Query], embedded: Mapping[str, np.ndarray], base: str
) -> list[Candidates]:
    """Dense candidates of each query (none for a lexical one), searched together per filter."""
    found: list[Candidates] = [[] for _ in queries]
    groups: dict[Where | None, list[int]] = {}
    for number, query in enumerate(queries):
        if query.dense:
            groups.setdefault(query.where, []).append(number)
    for where, numbers in groups.items():
        depth = max(_depth(queries[n]) for n in numbers)
        matrix = np.stack([embedded[queries[n].text] for n in numbers])
        for number, row in zip(numbers, source.dense(matrix, depth, where, base), strict=True):
            found[number] = row[: _depth(queries[number])]
    return found


def _widen(source: Source, query: Query, hits: list[Hit], rows: Mapping[int, ChunkRow]) -> list[Hit]:
    """``hits`` as passages with ``query.context`` neighbouring chunks (see passages.py)."""
    spans = passages.windows(hits, rows, query.context)
    return passages.merge(hits, rows, source.neighbours(spans), query.context, query.text)


def scope(store: Store, where: Where | None, base: str) -> Scope | None:
    """What ``where`` lets through in the local store; None when that is every document."""
    if where is None or where.empty:
        return None
    found, chunks, total = store.matching_documents(where, base)
    return None if len(found) == total else Scope(found, chunks)


def unmatched(source: Source, where: Where, base: str) -> str | None:
    """Why ``where`` lets no document through, naming each filter that matches none; None when
    some document passes it."""
    if source.passes(where, base):
        return None
    parts: list[tuple[Where, str]] = []
    if where.paths:
        patterns = ", ".join(repr(p) for p in where.paths)
        parts.append((Where(paths=where.paths), f"the path filter {patterns}"))
    if where.types:
        indexed = ", ".join(source.suffixes()) or "none"
        types = ", ".join(repr(t) for t in where.types)
        parts.append((Where(types=where.types), f"the type filter {types} (types indexed: {indexed})"))
    if where.modified_after is not None or where.modified_before is not None:
        span = Where(modified_after=where.modified_after, modified_before=where.modified_before)
        parts.append((span, "the modification-time filter"))
    empty = [text for part, text in parts if not source.passes(part, base)]
    if empty:
        return f"No indexed document matches {'; nor '.join(empty)}"
    return "No indexed document passes all the filters together"


def dense_candidates(
    vectors: FaissIndex, store: Store, embedded: np.ndarray, depth: int, within: Scope | None
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
