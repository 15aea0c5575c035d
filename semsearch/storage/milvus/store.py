"""The Milvus side: one index's collections, their schema, and the rows semsearch reads and
writes. No transactions, no joins: what keeps readers consistent is in ``index.milvus``.

An index named COLLECTION is a set of collections. ``COLLECTION__meta`` holds key/value rows: the
manifest of each data generation and ``current``, the generation readers use (a reindex builds a
new one beside it and switches this row). A generation ``G`` is three collections:

- ``G_docs``, the documents ledger: one row per published version of a file (path, version,
  content hash, size, mtime, encoding, chunk count; a removal is a ``deleted`` row). A file's
  current version is its newest row; it is current only once its chunks are all written.
- ``G_chunks``: one row per chunk of a version: text and place, the file's path, type and mtime
  (filters are expressions on the row itself), the dense vector, the lexical terms (semsearch's
  rjieba terms, NFKC + casefold, space-joined) and the BM25 sparse vector Milvus computes from
  them.
- ``G_staged``: embedded chunks of files not wholly embedded yet, by content hash and position.

Milvus requires a vector field in every collection; the ledger and meta carry a 2-d dummy one.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ParamSpec, TypeVar

import numpy as np

from ...errors import InvalidOptionError, MilvusError, SemsearchError
from .connection import Connection
from .expressions import literal

P = ParamSpec("P")
R = TypeVar("R")
TEXT_BYTES = 65_535  # Milvus's longest VARCHAR (Lite does not enforce it: the client must)
PATH_BYTES = 8_192
QUERY_LIMIT = 16_384  # the most rows one query or search returns
SCAN_BATCH = 4_000
_DUMMY = [0.0, 0.0]
CHUNK_FIELDS = ["id", "path", "version", "seq", "start", "end", "line", "tokens", "page", "heading", "text"]
LEDGER_FIELDS = ["path", "version", "deleted", "content_hash", "size", "mtime", "encoding", "chunks"]

# --index-type -> Milvus index type; "auto" is FLAT on Lite and AUTOINDEX on a server
INDEX_TYPES = {"flat": "FLAT", "ivf": "IVF_FLAT", "hnsw": "HNSW", "diskann": "DISKANN", "ivf_sq8": "IVF_SQ8"}
INDEX_TYPES["ivf_pq"] = "IVF_PQ"
LITE_TYPES = ("auto", "flat", "ivf")  # what Milvus Lite builds (all of them searched exactly)


def new_version() -> int:
    """A version number: the time in nanoseconds and a random part, so the newer of two versions
    of a file written on different machines wins, and two never collide."""
    return time.time_ns() + secrets.randbelow(1_000_000)


def stable_id(*parts: object) -> int:
    """A positive 63-bit id of these parts (chunk ids, document ids, staged rows)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode("utf-8", "surrogateescape"), digest_size=8)
    return int.from_bytes(digest.digest(), "big") & (2**63 - 1)


def clip(text: str, limit: int = TEXT_BYTES) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, at a character boundary."""
    data = text.encode("utf-8", "surrogatepass")
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


def _reported(method: Callable[P, R]) -> Callable[P, R]:
    """Milvus's and gRPC's errors as a one-line ``MilvusError`` naming the collection."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except SemsearchError:
            raise
        except Exception as exc:
            if type(exc).__module__.split(".")[0] not in ("pymilvus", "grpc", "milvus_lite"):
                raise
            store: MilvusStore = args[0]  # type: ignore[assignment]
            text = (str(getattr(exc, "message", "")) or str(exc)).strip().splitlines()
            detail = text[0][:300] if text else type(exc).__name__
            raise MilvusError(f"Milvus ({store.connection.target.shown}, {store.prefix or 'meta'}): {detail}") from exc

    return call


class MilvusStore:
    """The collections of one data generation ``prefix``, and the index's meta collection."""

    def __init__(self, connection: Connection, collection: str, prefix: str) -> None:
        self.connection = connection
        self.client = connection.client
        self.meta_name = f"{collection}__meta"
        self.prefix = prefix
        self.chunks_name, self.ledger_name, self.staged_name = f"{prefix}_chunks", f"{prefix}_docs", f"{prefix}_staged"

    # -- meta ----------------------------------------------------------------------------------

    @_reported
    def get_meta(self, key: str) -> str | None:
        if not self.client.has_collection(self.meta_name):
            return None
        rows = self.client.query(self.meta_name, filter=f"key == {literal(key)}", output_fields=["value"], limit=1)
        return str(rows[0]["value"]) if rows else None

    @_reported
    def put_meta(self, key: str, value: str) -> None:
        if not self.client.has_collection(self.meta_name):
            schema = self._schema()
            schema.add_field("key", _types().VARCHAR, is_primary=True, max_length=256)
            schema.add_field("value", _types().VARCHAR, max_length=TEXT_BYTES)
            schema.add_field("dummy", _types().FLOAT_VECTOR, dim=2)
            self._create(self.meta_name, schema, "dummy")
        self.client.upsert(self.meta_name, [{"key": key, "value": clip(value), "dummy": _DUMMY}])

    @_reported
    def delete_meta(self, key: str) -> None:
        if self.client.has_collection(self.meta_name):
            self.client.delete(self.meta_name, filter=f"key == {literal(key)}")

    # -- the collections -------------------------------------------------------------------------

    @_reported
    def exists(self) -> bool:
        return bool(self.client.has_collection(self.chunks_name))

    @_reported
    def create(self, dimension: int, index_type: str) -> None:
        """Create the generation's collections (those missing), the vectors indexed as
        ``index_type`` (a Milvus index type)."""
        from pymilvus import Function, FunctionType

        types = _types()
        if not self.client.has_collection(self.chunks_name):
            schema = self._schema()
            schema.add_field("id", types.INT64, is_primary=True)
            schema.add_field("path", types.VARCHAR, max_length=PATH_BYTES)
            for name in ("version", "seq", "start", "end", "line", "tokens", "page"):
                schema.add_field(name, types.INT64)
            schema.add_field("heading", types.VARCHAR, max_length=TEXT_BYTES)
            schema.add_field("text", types.VARCHAR, max_length=TEXT_BYTES)
            schema.add_field("suffix", types.VARCHAR, max_length=64)
            schema.add_field("mtime", types.DOUBLE)
            schema.add_field("vector", types.FLOAT_VECTOR, dim=dimension)
            analyzer = {"tokenizer": "whitespace"}
            schema.add_field(
                "terms", types.VARCHAR, max_length=TEXT_BYTES, enable_analyzer=True, analyzer_params=analyzer
            )
            schema.add_field("sparse", types.SPARSE_FLOAT_VECTOR)
            bm25 = Function(
                name="bm25", function_type=FunctionType.BM25, input_field_names=["terms"], output_field_names=["sparse"]
            )
            schema.add_function(bm25)
            indexes = self.client.prepare_index_params()
            indexes.add_index(field_name="vector", metric_type="COSINE", **index_spec(index_type, dimension))
            indexes.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
            self.client.create_collection(
                self.chunks_name, schema=schema, index_params=indexes, consistency_level="Strong"
            )
        if not self.client.has_collection(self.ledger_name):
            schema = self._schema()
            schema.add_field("key", types.INT64, is_primary=True)  # of (path, version)
            schema.add_field("path", types.VARCHAR, max_length=PATH_BYTES)
            schema.add_field("version", types.INT64)
            schema.add_field("deleted", types.BOOL)
            schema.add_field("content_hash", types.VARCHAR, max_length=128)
            schema.add_field("size", types.INT64)
            schema.add_field("mtime", types.DOUBLE)
            schema.add_field("encoding", types.VARCHAR, max_length=64)
            schema.add_field("chunks", types.INT64)
            schema.add_field("suffix", types.VARCHAR, max_length=64)
            schema.add_field("dummy", types.FLOAT_VECTOR, dim=2)
            self._create(self.ledger_name, schema, "dummy")
        if not self.client.has_collection(self.staged_name):
            schema = self._schema()
            schema.add_field("id", types.INT64, is_primary=True)
            schema.add_field("content_hash", types.VARCHAR, max_length=128)
            schema.add_field("path", types.VARCHAR, max_length=PATH_BYTES)
            for name in ("seq", "start", "end"):
                schema.add_field(name, types.INT64)
            schema.add_field("vector", types.FLOAT_VECTOR, dim=dimension)
            self._create(self.staged_name, schema, "vector")

    @_reported
    def drop(self) -> None:
        for name in (self.chunks_name, self.ledger_name, self.staged_name):
            if self.client.has_collection(name):
                self.client.drop_collection(name)

    @_reported
    def reindex_vectors(self, index_type: str, dimension: int) -> None:
        """Rebuild the vector index of the chunks as ``index_type`` (from the stored vectors)."""
        self.client.release_collection(self.chunks_name)
        self.client.drop_index(self.chunks_name, "vector")
        indexes = self.client.prepare_index_params()
        indexes.add_index(field_name="vector", metric_type="COSINE", **index_spec(index_type, dimension))
        self.client.create_index(self.chunks_name, indexes)
        self.client.load_collection(self.chunks_name)

    @_reported
    def vector_index(self) -> str:
        """The Milvus index type the chunk vectors have now."""
        try:
            found = self.client.describe_index(self.chunks_name, "vector")
            return str(found.get("index_type", "?"))
        except Exception:  # an engine that cannot describe it
            return "?"

    def _schema(self) -> Any:
        return self.client.create_schema(auto_id=False, enable_dynamic_field=False)

    def _create(self, name: str, schema: Any, vector: str) -> None:
        indexes = self.client.prepare_index_params()
        indexes.add_index(field_name=vector, index_type="FLAT", metric_type="L2")
        self.client.create_collection(name, schema=schema, index_params=indexes, consistency_level="Strong")

    # -- rows ------------------------------------------------------------------------------------

    @_reported
    def insert(self, name: str, rows: Sequence[dict[str, Any]], batch: int = 512) -> None:
        for first in range(0, len(rows), batch):
            self.client.insert(name, list(rows[first : first + batch]))

    @_reported
    def upsert(self, name: str, rows: Sequence[dict[str, Any]], batch: int = 512) -> None:
        for first in range(0, len(rows), batch):
            self.client.upsert(name, list(rows[first : first + batch]))

    @_reported
    def delete(self, name: str, expression: str) -> None:
        if expression:
            self.client.delete(name, filter=expression)

    @_reported
    def query(
        self, name: str, expression: str, fields: Sequence[str], limit: int = QUERY_LIMIT
    ) -> list[dict[str, Any]]:
        return list(self.client.query(name, filter=expression, output_fields=list(fields), limit=limit))

    def scan(self, name: str, expression: str, fields: Sequence[str]) -> Iterator[dict[str, Any]]:
        """Every row matching ``expression``, however many, in batches."""
        found = self._iterator(name, expression, fields)
        try:
            while batch := self._next(found):
                yield from batch
        finally:
            found.close()

    @_reported
    def _iterator(self, name: str, expression: str, fields: Sequence[str]) -> Any:
        return self.client.query_iterator(name, batch_size=SCAN_BATCH, filter=expression, output_fields=list(fields))

    @_reported
    def _next(self, iterator: Any) -> list[dict[str, Any]]:
        return list(iterator.next())

    @_reported
    def by_ids(self, name: str, ids: Sequence[int], fields: Sequence[str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for first in range(0, len(ids), 1_000):
            part = ", ".join(str(int(i)) for i in ids[first : first + 1_000])
            rows.extend(self.query(name, f"id in [{part}]", fields))
        return rows

    @_reported
    def search(
        self, name: str, field: str, data: list[Any], limit: int, expression: str, params: dict[str, Any]
    ) -> list[list[dict[str, Any]]]:
        found = self.client.search(
            name,
            data=data,
            anns_field=field,
            limit=limit,
            filter=expression,
            output_fields=["path", "version"],
            search_params=params,
        )
        return [list(hits) for hits in found]

    @_reported
    def count(self, name: str) -> int:
        rows = self.client.query(name, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0


def milvus_index_type(requested: str, lite: bool) -> str:
    """The Milvus index type for ``--index-type``: auto is FLAT on Lite, AUTOINDEX on a server."""
    if requested == "auto":
        return "FLAT" if lite else "AUTOINDEX"
    if requested not in INDEX_TYPES:
        raise InvalidOptionError(f"Unknown index type {requested!r}; use one of auto, {', '.join(INDEX_TYPES)}")
    if lite and requested not in LITE_TYPES:
        raise InvalidOptionError(f"Milvus Lite builds only {', '.join(LITE_TYPES)}; {requested} needs a Milvus server")
    return INDEX_TYPES[requested]


def index_spec(index_type: str, dimension: int) -> dict[str, Any]:
    """``add_index`` arguments for a Milvus index type."""
    params: dict[str, Any] = {
        "IVF_FLAT": {"nlist": 1024},
        "IVF_SQ8": {"nlist": 1024},
        "IVF_PQ": {"nlist": 1024, "m": next((m for m in (64, 32, 16, 8, 4, 2) if dimension % m == 0), 1), "nbits": 8},
        "HNSW": {"M": 16, "efConstruction": 200},
    }.get(index_type, {})
    return {"index_type": index_type, "params": params}


def search_params(index_type: str, limit: int) -> dict[str, Any]:
    """Search parameters for the vector index: wide enough for ``limit`` hits at high recall."""
    params: dict[str, Any] = {}
    if index_type.startswith("IVF"):
        params = {"nprobe": 64}
    elif index_type == "HNSW":
        params = {"ef": max(128, limit)}
    elif index_type == "DISKANN":
        params = {"search_list": max(128, limit)}
    return {"metric_type": "COSINE", "params": params}


def vectors_of(rows: Sequence[dict[str, Any]], dimension: int) -> np.ndarray:
    if not rows:
        return np.zeros((0, dimension), dtype=np.float32)
    return np.asarray([row["vector"] for row in rows], dtype=np.float32).reshape(len(rows), dimension)


def _types() -> Any:
    from pymilvus import DataType

    return DataType
