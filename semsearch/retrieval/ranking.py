"""Turning the dense and lexical candidate lists into one ranking of hits.

Pure functions over (chunk id, score) lists, best first. ``hybrid`` fuses the two lists by
reciprocal rank fusion (Cormack et al., 2009): each chunk scores the sum over the lists it is
in of 1 / (rrf_k + rank), so agreement between the two counts for more than either score, and
the two scales (cosine, BM25) never need to be made comparable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..query import RRF_K
from ..results import Hit
from ..storage.rows import ChunkRow
from .highlights import highlights

HYBRID_DEPTH = 50  # candidates taken from each list before fusing, at least k

Scorer = Callable[[str, Sequence[str]], np.ndarray]  # a reranker: (query, passages) -> one score each


@dataclass(frozen=True)
class Ranked:
    """One chunk of a ranking: its score in the mode asked for, and which lists found it."""

    chunk_id: int
    score: float
    dense: bool
    lexical: bool
    first_score: float | None = None  # the first stage's score, once reranked


def single(candidates: list[tuple[int, float]], *, lexical: bool) -> list[Ranked]:
    return [Ranked(chunk_id, score, not lexical, lexical) for chunk_id, score in candidates]


def fuse(dense: list[tuple[int, float]], lexical: list[tuple[int, float]], rrf_k: int = RRF_K) -> list[Ranked]:
    """Reciprocal rank fusion of two rankings, best first; ties keep the dense order."""
    scores: dict[int, float] = {}
    found_by: dict[int, tuple[bool, bool]] = {}
    for is_lexical, ranking in ((False, dense), (True, lexical)):
        for rank, (chunk_id, _) in enumerate(ranking, 1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (rrf_k + rank)
            by_dense, by_lexical = found_by.get(chunk_id, (False, False))
            found_by[chunk_id] = (by_dense or not is_lexical, by_lexical or is_lexical)
    order = sorted(scores, key=lambda chunk_id: -scores[chunk_id])  # stable: dense first on ties
    return [Ranked(c, scores[c], *found_by[c]) for c in order]


def rerank(ranked: list[Ranked], rows: Mapping[int, ChunkRow], query: str, depth: int, scorer: Scorer) -> list[Ranked]:
    """The first ``depth`` ranked chunks still in ``rows``, rescored by ``scorer`` on their text
    and ordered by that score (ties keep the first stage's order); the rest are dropped."""
    head = [item for item in ranked if item.chunk_id in rows][:depth]
    if not head:
        return []
    scores = np.asarray(scorer(query, [rows[item.chunk_id].text for item in head]), dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    return [replace(head[i], score=float(scores[i]), first_score=head[i].score) for i in order]


def to_hits(
    ranked: list[Ranked], rows: Mapping[int, ChunkRow], query: str, k: int, min_score: float | None
) -> list[Hit]:
    """The first ``k`` ranked chunks still in ``rows`` (and scoring at least ``min_score``, the
    reranker's score once reranked) as hits; a lexical match carries the spans of the query's
    terms in its text."""
    hits: list[Hit] = []
    for item in ranked:
        row = rows.get(item.chunk_id)
        if row is None or (min_score is not None and item.score < min_score):
            continue
        matched = "+".join(name for name, found in (("dense", item.dense), ("lexical", item.lexical)) if found)
        spans = tuple(highlights(row.text, query)) if item.lexical else ()
        hits.append(
            Hit(
                rank=len(hits) + 1,
                score=float(item.score),
                text=row.text,
                source=row.path,
                line=row.line,
                start=row.start,
                end=row.end,
                chunk_id=row.id,
                matched=matched,
                highlights=spans,
                page=row.page,
                heading=row.heading,
                chunk_ids=(row.id,),
                reranked=item.first_score is not None,
                first_score=item.first_score,
            )
        )
        if len(hits) == k:
            break
    return hits
