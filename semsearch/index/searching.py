"""Answering queries on an open index: embed the dense ones together, then rank inside one
consistent state of the backend (``retrieval.search``), with notes on what the user should know."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..errors import ChunkNotFoundError
from ..query import Query
from ..results import Hit, Passage
from ..retrieval import passages, search
from .backend import Backend


def answer(handle: Backend, queries: Sequence[Query], base: str | os.PathLike[str] | None = None) -> list[list[Hit]]:
    """The hits of each query, embedding all the dense ones in one batch. Relative path filters
    are taken relative to ``base`` (default: the working directory)."""
    handle.follow()
    handle.require_manifest()  # no index yet: say so, rather than find nothing
    # loaded before the first stage, so one that cannot load fails the query before the
    # embedding model has taken seconds to load; and before the read starts: a model load must
    # not hold a consistent state open
    rerankers = {name: handle.reranker(name).score for name in dict.fromkeys(q.rerank for q in queries) if name}
    dense_texts = list(dict.fromkeys(q.text for q in queries if q.dense))
    embedded = {}
    if dense_texts:
        encoder = handle.encoder()
        _note_long_queries(handle, dense_texts)
        embedded = dict(zip(dense_texts, encoder.encode_query(dense_texts), strict=True))
    folder = os.fspath(base if base is not None else os.getcwd())
    with handle.reading():
        hits = search.rank(handle, queries, embedded, folder, rerankers)
        for where in dict.fromkeys(q.where for q, found in zip(queries, hits, strict=True) if q.where and not found):
            if (why := search.unmatched(handle, where, folder)) and why not in handle.notes:
                handle.notes.append(why)
    if dense_texts:
        handle.save()
    return hits


def passage(handle: Backend, chunk_id: int, context: int, query: str | None = None) -> Passage:
    """The passage around chunk ``chunk_id``: it and up to ``context`` chunks either side, read
    in one consistent state; ChunkNotFoundError when the index holds no such chunk."""
    handle.follow()
    handle.require_manifest()
    with handle.reading():
        # ids are SQLite rowids or Milvus's 63-bit ones: any other number names no chunk
        row = handle.chunks([chunk_id]).get(chunk_id) if 0 <= chunk_id < 2**63 else None
        if row is None:
            raise ChunkNotFoundError(
                f"No chunk {chunk_id} in {handle.location}; its file may have been re-indexed since: search again"
            )
        chunks = handle.neighbours([passages.window(row, context)])
    return passages.around(chunk_id, chunks, query)


def _note_long_queries(handle: Backend, queries: list[str]) -> None:
    encoder = handle.encoder()
    limit = encoder.max_query_tokens
    for number, spans in enumerate(encoder.token_spans(queries), 1):
        if len(spans) > limit:
            which = f"Query {number}" if len(queries) > 1 else "The query"
            handle.notes.append(
                f"{which} is {len(spans)} tokens; the model reads only the first {limit}, the rest is ignored"
            )
