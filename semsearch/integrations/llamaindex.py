"""A LlamaIndex retriever over a semsearch index.

```python
from semsearch.integrations.llamaindex import SemsearchRetriever

retriever = SemsearchRetriever.from_path(".semsearch", k=5, mode="hybrid")
nodes = retriever.retrieve("长城有多长？")
```

Needs the ``llamaindex`` extra: ``pip install 'semsearch[llamaindex]'``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ..errors import MissingExtraError
from ..index import Index
from ..query import Query
from ..results import Hit
from . import metadata, over_path

try:
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeRelationship, NodeWithScore, QueryBundle, RelatedNodeInfo, TextNode
except ImportError:
    raise MissingExtraError(
        "semsearch.integrations.llamaindex needs llama-index-core; install it with: pip install 'semsearch[llamaindex]'"
    ) from None

__all__ = ["SemsearchRetriever", "to_node"]

# what an LLM sees of a node's metadata besides its text; the rest is bookkeeping
_LLM_KEYS = ("source", "page", "heading")


class SemsearchRetriever(BaseRetriever):
    """Retrieves ``NodeWithScore``s from a semsearch ``Index``: the ``k`` best passages for a query.

    ``options`` (``mode``, ``where``, ``context``, ``min_score``…) are ``Index.search``'s, checked
    by ``Query`` when the retriever is made. Each node's text is the passage, its score the hit's, its id the chunk id
    and its source relationship the document's path; its metadata says where the passage is
    (``source``, ``line``, ``page``, ``heading``, ``start``, ``end``) and how it was found
    (``matched``, ``chunk_id``, ``chunk_ids``). Safe to call from any thread (an ``Index``
    serializes its calls) and from async code (the search runs in a worker thread).
    """

    def __init__(
        self,
        index: Index,
        k: int = 4,
        callback_manager: CallbackManager | None = None,
        **options: Any,
    ) -> None:
        self.index = index
        # a mistyped option or filter fails here, where it was written, not on the first query
        self.search_options = Query.check_options(k=k, **options)
        self._owns_index = False
        super().__init__(callback_manager=callback_manager)

    @property
    def k(self) -> int:
        """How many nodes a retrieval returns."""
        return int(self.search_options["k"])

    @classmethod
    def from_path(
        cls, path: str | os.PathLike[str], *, model: str | None = None, device: str = "auto", **fields: Any
    ) -> SemsearchRetriever:
        """A retriever over the existing index at ``path`` (IndexNotFoundError when there is none),
        with ``fields`` such as ``k`` and ``mode``; ``close`` closes the index too."""
        retriever = over_path(lambda index: cls(index, **fields), path, model, device)
        retriever._owns_index = True
        return retriever

    def close(self) -> None:
        """Close the index if ``from_path`` opened it."""
        if self._owns_index:
            self.index.close()

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [to_node(hit) for hit in self.index.search(query_bundle.query_str, **self.search_options)]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # BaseRetriever's default calls _retrieve right in the event loop, blocking it for the search
        return await asyncio.to_thread(self._retrieve, query_bundle)


def to_node(hit: Hit) -> NodeWithScore:
    """A LlamaIndex ``NodeWithScore`` for a semsearch ``Hit``: a ``TextNode`` with the hit's score."""
    # the score and rank are the NodeWithScore's own
    found = {key: value for key, value in metadata(hit).items() if key not in ("score", "rank")}
    node = TextNode(
        text=hit.text,
        id_=str(hit.chunk_id),
        metadata=found,
        # the passage is embedded already; an LLM needs only where it comes from
        excluded_embed_metadata_keys=list(found),
        excluded_llm_metadata_keys=[key for key in found if key not in _LLM_KEYS],
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=hit.source)},
        start_char_idx=hit.start,
        end_char_idx=hit.end,
    )
    return NodeWithScore(node=node, score=hit.score)
