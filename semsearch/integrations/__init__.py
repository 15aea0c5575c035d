"""Retrievers for LangChain (``integrations.langchain``) and LlamaIndex (``integrations.llamaindex``).

What both share lives here, free of either framework.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from ..index import Index, open_index
from ..results import Hit

R = TypeVar("R")


def metadata(hit: Hit) -> dict[str, Any]:
    """Where a hit is and how it was found, as a framework document's metadata."""
    return {
        "source": hit.source,
        "line": hit.line,
        "page": hit.page,
        "heading": hit.heading,
        "score": hit.score,
        "rank": hit.rank,
        "chunk_id": hit.chunk_id,
        "chunk_ids": list(hit.chunk_ids),
        "matched": hit.matched,
        "start": hit.start,
        "end": hit.end,
        "reranked": hit.reranked,
        "first_score": hit.first_score,
    }


def over_path(make: Callable[[Index], R], path: str | os.PathLike[str], model: str | None, device: str) -> R:
    """``make(index)`` for the existing index at ``path`` (IndexNotFoundError when there is
    none); the index is closed again if ``make`` fails."""
    index = open_index(path, model, device=device, create=False)
    try:
        return make(index)
    except BaseException:
        index.close()
        raise
