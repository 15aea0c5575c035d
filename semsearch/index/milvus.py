"""The Milvus backend: an index in Milvus collections (a server, a cluster, Zilliz Cloud, or
Milvus Lite embedded), shared by any number of semsearch processes on any machines.

Consistency without transactions. Every write of a file is a new *version* (a time-ordered
number). Its chunks are inserted first, invisible; then one ledger row (path, version) publishes
it; then the older versions' rows are deleted. A file's current version is its newest ledger row,
and readers drop every chunk whose (path, version) is not current, so a reader never sees a file
half-replaced or twice, whatever was killed when. Two writers of one file each publish a whole
version; the newer version wins and the loser deletes its own rows. A removal is a newer
``deleted`` ledger row. ``repair`` deletes what a crash left: chunk rows of versions never
published or superseded, older ledger rows, repeated rows; ``check`` proves none is left.
Searches ask Milvus for more hits than needed, filter expression applied first, and go deeper
while dropped rows leave fewer than k.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..config import ChunkSettings
from ..documents.terms import TERMS_VERSION, indexed
from ..query import Where
from ..results import Check, IndexInfo
from ..storage.milvus.connection import is_milvus
from ..storage.milvus.expressions import literal, loaded_path, stored_path, suffix_of, to_expression
from ..storage.milvus.rows import chunk_row, document_of
from ..storage.milvus.store import (
    CHUNK_FIELDS,
    QUERY_LIMIT,
    MilvusStore,
    clip,
    milvus_index_type,
    search_params,
    stable_id,
)
from ..storage.rows import ChunkRow
from . import milvus_upkeep as upkeep
from .backend import Backend, Candidates, Options, Published, describe_info
from .milvus_data import MilvusData

__all__ = ["MilvusBackend", "is_milvus"]


class MilvusBackend(MilvusData):
    """An index in Milvus at ``location`` (see ``storage.milvus.connection``)."""

    # -- searching ---------------------------------------------------------------------------------

    def dense(self, embedded: np.ndarray, depth: int, where: Where | None, base: str) -> list[Candidates]:
        kind = self._kind()
        data = [row.tolist() for row in np.asarray(embedded, dtype=np.float32)]
        return self._search("vector", data, depth, where, base, lambda limit: search_params(kind, limit))

    def lexical(self, text: str, depth: int, where: Where | None, base: str) -> Candidates:
        stale = (
            f"The lexical terms in {self.location} were written before Traditional/Simplified folding; "
            "the next 'semsearch ingest' or 'semsearch repair' writes them again"
        )
        if self.terms_version < TERMS_VERSION and stale not in self.notes:
            self.notes.append(stale)
        terms = clip(indexed(text))
        if not terms:
            return []
        return self._search("sparse", [terms], depth, where, base, lambda limit: {"metric_type": "BM25"})[0]

    def _kind(self) -> str:
        manifest = self.require_manifest()
        return milvus_index_type(manifest.index_type, self.target.lite is not None)

    def _search(
        self, field: str, data: list[Any], depth: int, where: Where | None, base: str, params: Any
    ) -> list[Candidates]:
        """The best ``depth`` current hits of each query in ``data``: asked for with room for
        rows of versions not current (and for glob filters, checked here), deeper while short."""
        store = self._require()
        expression, admits = to_expression(where, base)
        found: list[Candidates] = [[] for _ in data]
        todo = list(range(len(data)))
        limit = min(QUERY_LIMIT, depth * 2 + 16)
        while todo:
            results = store.search(store.chunks_name, field, [data[i] for i in todo], limit, expression, params(limit))
            versions = self._version_of([hit["entity"]["path"] for hits in results for hit in hits])
            short = []
            for number, hits in zip(todo, results, strict=True):
                kept = [
                    (int(hit["id"]), float(hit["distance"]))
                    for hit in hits
                    if versions.get(hit["entity"]["path"]) == hit["entity"]["version"]
                    and (admits is None or admits(loaded_path(hit["entity"]["path"])))
                ]
                found[number] = kept[:depth]
                if len(kept) < depth and len(hits) == limit and limit < QUERY_LIMIT:
                    short.append(number)
            todo, limit = short, min(QUERY_LIMIT, limit * 4)
        return found

    def chunks(self, ids: Sequence[int]) -> Mapping[int, ChunkRow]:
        store = self._require()
        found = store.by_ids(store.chunks_name, list(ids), CHUNK_FIELDS)
        versions = self._version_of([row["path"] for row in found])  # remembered from the search
        rows = {}
        for row in found:
            if versions.get(row["path"]) != row["version"]:
                continue  # a version not (or no longer) published: as if it were not there
            document = stable_id(row["path"])
            self._documents[document] = (row["path"], int(row["version"]))
            rows[int(row["id"])] = chunk_row(row, document)
        return rows

    def neighbours(self, windows: Sequence[tuple[int, int, int]]) -> list[ChunkRow]:
        store = self._require()
        found: list[ChunkRow] = []
        for document, first, last in windows:
            path, version = self._documents[document]
            expression = f"path == {literal(path)} and version == {version} and seq >= {first} and seq <= {last}"
            rows = store.query(store.chunks_name, expression, CHUNK_FIELDS)
            found.extend(chunk_row(r, document) for r in sorted(rows, key=lambda r: r["seq"]))
        return found

    def passes(self, where: Where, base: str) -> bool:
        expression, admits = to_expression(where, base)
        rows = self._ledger(expression)
        return any(not r["deleted"] and (admits is None or admits(loaded_path(p))) for p, r in rows.items())

    def suffixes(self) -> list[str]:
        return sorted({suffix_of(path) or "(none)" for path in self.documents()})

    # -- looking after it, moving it ---------------------------------------------------------------

    def check(self) -> list[Check]:
        with self.lock():
            return upkeep.checks(self._require(), self.require_manifest())

    def repair(self) -> list[Check]:
        """Delete orphan versions, superseded ledger rows and repeated rows; take documents that
        are not whole out of the ledger (the next ingest embeds them again); rebuild the vector
        index as ``--index-type`` asks; then check."""
        with self.lock():
            store, manifest = self._require(), self.require_manifest()
            broken = upkeep.repair(store)
            self.upgrade_terms()
            if broken:
                self.notes.append(f"{broken} documents were not whole and were taken out; ingest them again")
            wanted = self.options.index_type
            if wanted is not None and wanted != manifest.index_type:
                store.reindex_vectors(milvus_index_type(wanted, self.target.lite is not None), manifest.model.dimension)
                self.manifest = replace(manifest, index_type=wanted)
                self._meta().put_meta(f"manifest:{store.prefix}", self.manifest.to_json())
            return upkeep.checks(store, self.require_manifest())

    def info(self) -> IndexInfo:
        self.follow()
        store = self._require()
        ledger = [r for r in self._ledger("").values() if not r["deleted"]]
        lite = self.target.lite
        size = -1  # a server's: not known from here
        if lite is not None:
            size = sum(f.stat().st_size for f in ([lite] if lite.is_file() else lite.rglob("*")) if f.is_file())
        where = "Milvus Lite" if lite else "Milvus"
        structure = f"{store.vector_index()} in {where}"
        counts = (len(ledger), sum(int(r["chunks"]) for r in ledger))
        return describe_info(self, self.target.shown, counts, structure, "milvus", size)

    def export(self, paths: Sequence[str]) -> Iterator[Published]:
        current = self._current([stored_path(p) for p in paths])
        for row in current.values():
            found = self._whole(row)
            if found is not None:
                yield Published(document_of(row), *found)

    def rebuild(self, options: Options, chunking: ChunkSettings | None) -> Backend:
        meta = self._meta()
        building = meta.get_meta("building")
        if building is not None:
            try:
                resumed = MilvusBackend(self.location, options, building)
                resumed.open()
                if resumed.manifest is not None and chunking in (None, resumed.manifest.chunking):
                    resumed.locked = True
                    return resumed
            except Exception:  # a damaged leftover is simply started over
                pass
            MilvusStore(meta.connection, self.target.collection, building).drop()
        new = MilvusBackend(self.location, options, f"{self.target.collection}__g{secrets.token_hex(4)}")
        new.locked = True
        new.open()
        return new

    def switch_to(self, new: Backend) -> None:
        assert isinstance(new, MilvusBackend) and new.store is not None
        meta = self._meta()
        meta.put_meta("current", new.store.prefix)
        meta.delete_meta("building")
        if self.store is not None:
            self.store.drop()
            meta.delete_meta(f"manifest:{self.store.prefix}")
            meta.delete_meta(f"terms:{self.store.prefix}")
        self.store, self.manifest, self.model = new.store, new.manifest, new.model
        self.terms_version = new.terms_version
        self._encoder, self.options = new._encoder, replace(self.options, model=new.options.model)
        self.store = MilvusStore(meta.connection, self.target.collection, new.store.prefix)
        new.release()

    def discard(self, new: Backend) -> None:
        assert isinstance(new, MilvusBackend)
        if new.store is not None:
            new.store.drop()
        self._meta().delete_meta("building")
        new.release()
