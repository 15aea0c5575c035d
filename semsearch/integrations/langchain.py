"""A LangChain retriever over a semsearch index.

```python
from semsearch.integrations.langchain import SemsearchRetriever

retriever = SemsearchRetriever.from_path(".semsearch", k=5, mode="hybrid")
docs = retriever.invoke("长城有多长？")
```

Needs the ``langchain`` extra: ``pip install 'semsearch[langchain]'``.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import MissingExtraError
from ..query import Query
from ..results import Hit
from . import metadata, over_path

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError:
    raise MissingExtraError(
        "semsearch.integrations.langchain needs langchain-core; install it with: pip install 'semsearch[langchain]'"
    ) from None
from pydantic import ConfigDict, PrivateAttr, model_validator

__all__ = ["SemsearchRetriever", "to_document"]


class SemsearchRetriever(BaseRetriever):
    """Retrieves ``Document``s from a semsearch ``Index``: the ``k`` best passages for a query.

    Every other field (``mode``, ``where``, ``context``, ``min_score``…) is one of
    ``Index.search``'s options, checked by ``Query`` when the retriever is made. Each document's
    ``page_content`` is the passage and its ``metadata`` says where it is (``source``, ``line``,
    ``page``, ``heading``, ``start``, ``end``) and how it was found (``score``, ``rank``,
    ``matched``, ``chunk_id``, ``chunk_ids``). Safe to call from any thread (an ``Index``
    serializes its calls) and from async code (LangChain runs the search in an executor).
    """

    # the search options are extra fields: whatever Query takes, it checks them
    model_config = ConfigDict(arbitrary_types_allowed=True, extra="allow")

    index: Any
    """The semsearch ``Index`` searched."""
    k: int = 4
    """How many documents (LangChain's usual default, 4)."""

    _owns_index: bool = PrivateAttr(default=False)

    def __init__(self, index: Any = None, /, **fields: Any) -> None:
        # the index may be given positionally, as for the LlamaIndex retriever:
        # SemsearchRetriever(index, k=2)
        if index is not None:
            if "index" in fields:
                raise TypeError("SemsearchRetriever got the index both positionally and as index=")
            fields["index"] = index
        super().__init__(**fields)

    @model_validator(mode="after")
    def _check_options(self) -> SemsearchRetriever:
        # a mistyped option or filter fails here, where it was written, not on the first query
        extra = self.__pydantic_extra__ if self.__pydantic_extra__ is not None else {}
        extra.update(Query.check_options(k=self.k, **extra))
        self.k = extra.pop("k")
        return self

    @property
    def search_options(self) -> dict[str, Any]:
        """The options each search is made with."""
        return {"k": self.k, **(self.__pydantic_extra__ or {})}

    @classmethod
    def from_path(
        cls, path: str | os.PathLike[str], *, model: str | None = None, device: str = "auto", **fields: Any
    ) -> SemsearchRetriever:
        """A retriever over the existing index at ``path`` (IndexNotFoundError when there is none),
        with ``fields`` such as ``k`` and ``mode``; ``close`` closes the index too."""
        retriever = over_path(lambda index: cls(index=index, **fields), path, model, device)
        retriever._owns_index = True
        return retriever

    def close(self) -> None:
        """Close the index if ``from_path`` opened it."""
        if self._owns_index:
            self.index.close()

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [to_document(hit) for hit in self.index.search(query, **self.search_options)]


def to_document(hit: Hit) -> Document:
    """A LangChain ``Document`` for a semsearch ``Hit``, its id the hit's chunk id."""
    return Document(page_content=hit.text, metadata=metadata(hit), id=str(hit.chunk_id))
