"""semsearch: Chinese-first semantic search with an embedded index.

```python
import semsearch
index = semsearch.open_index(".semsearch")
index.ingest(["docs/"])
hits = index.search("你是谁？", k=5)
hits = index.search("安装", k=5, where={"paths": ["docs/**/*.md"]}, context=1)
hits = index.search("安装", k=5, mode="hybrid", rerank=True)  # BAAI/bge-reranker-v2-m3
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import DEFAULT_MODEL, ChunkSettings, Manifest, ModelInfo, __version__
from .documents.sharding import Shard
from .errors import (
    ChunkNotFoundError,
    DatasetError,
    DiskFullError,
    IndexClosedError,
    IndexCorruptError,
    IndexLockedError,
    IndexNotFoundError,
    Interrupted,
    InvalidOptionError,
    InvalidQueryError,
    MilvusError,
    MissingExtraError,
    ModelLoadError,
    ModelMismatchError,
    NothingToIngestError,
    PathNotAllowedError,
    ReadOnlyIndexError,
    SameIndexError,
    SemsearchError,
    SourceNotFoundError,
    UnsupportedModelError,
    WatchError,
)
from .query import DEFAULT_RERANKER, Query, Where
from .results import Check, Hit, IndexInfo, IngestReport, MigrateReport, Passage, RemoveReport, Skipped

if TYPE_CHECKING:
    from .embedding.encoder import Encoder
    from .embedding.reranker import Reranker
    from .index import Index, migrate, open_index

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_RERANKER",
    "Check",
    "ChunkNotFoundError",
    "ChunkSettings",
    "DatasetError",
    "DiskFullError",
    "Encoder",
    "Hit",
    "Index",
    "IndexClosedError",
    "IndexCorruptError",
    "IndexInfo",
    "IndexLockedError",
    "IndexNotFoundError",
    "IngestReport",
    "Interrupted",
    "InvalidOptionError",
    "InvalidQueryError",
    "Manifest",
    "MigrateReport",
    "MilvusError",
    "MissingExtraError",
    "ModelInfo",
    "ModelLoadError",
    "ModelMismatchError",
    "NothingToIngestError",
    "Passage",
    "PathNotAllowedError",
    "Query",
    "ReadOnlyIndexError",
    "RemoveReport",
    "Reranker",
    "SameIndexError",
    "SemsearchError",
    "Shard",
    "Skipped",
    "SourceNotFoundError",
    "UnsupportedModelError",
    "WatchError",
    "Where",
    "__version__",
    "migrate",
    "open_index",
]


def __getattr__(name: str) -> object:
    # the index (SQLite, FAISS, Milvus), the encoder and the reranker (torch) are imported when
    # first asked for, so `import semsearch` and a command that answers through a running server
    # stay fast
    if name in ("Index", "migrate", "open_index"):
        from . import index

        value = getattr(index, name)
        globals()[name] = value  # found once; later lookups never come here
        return value
    if name == "Encoder":
        from .embedding.encoder import Encoder

        return Encoder
    if name == "Reranker":
        from .embedding.reranker import Reranker

        return Reranker
    raise AttributeError(f"module 'semsearch' has no attribute {name!r}")
