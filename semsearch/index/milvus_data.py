"""The Milvus backend's data side (``MilvusData``): opening an index in Milvus, its documents
ledger, staged work, and publishing and removing documents as versions. ``MilvusBackend``
(``index.milvus``) adds searching, upkeep and reindexing. See ``index.milvus`` for how readers
stay consistent without transactions."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Manifest
from ..documents.chunking import Chunk, placed_alike
from ..documents.prepare import Document
from ..documents.terms import TERMS_VERSION
from ..errors import IndexCorruptError
from ..storage.milvus.connection import Connection, parse
from ..storage.milvus.expressions import expressible, literal, loaded_path, stored_path, under
from ..storage.milvus.expressions import suffix_of as suffix_of
from ..storage.milvus.rows import chunk_of, chunk_rows, document_of, ledger_row, tombstone
from ..storage.milvus.store import (
    CHUNK_FIELDS,
    LEDGER_FIELDS,
    MilvusStore,
    milvus_index_type,
    new_version,
    stable_id,
    vectors_of,
)
from . import manifest as manifests
from . import milvus_upkeep as upkeep
from .backend import Backend, Options, Published, Staged

_IN_BATCH = 256  # paths per ``path in [...]`` expression


class MilvusData(Backend):
    """An index in Milvus at ``location`` (see ``storage.milvus.connection``)."""

    def __init__(self, location: str, options: Options, generation: str | None = None) -> None:
        super().__init__(location, options)
        self.target = parse(location)
        if options.index_type is not None:
            milvus_index_type(options.index_type, self.target.lite is not None)
        self.root = self.target.lite.parent if self.target.lite else Path.cwd()
        self.data_folder = self.root
        self.connection: Connection | None = None
        self.store: MilvusStore | None = None
        self.building = generation  # a reindex's new generation, not yet current
        self.locked = False
        self._versions: dict[str, int | None] | None = None  # current versions, inside ``reading``
        self._documents: dict[int, tuple[str, int]] = {}  # document id -> (stored path, version)
        self.terms_version = TERMS_VERSION  # how the stored lexical terms were folded (``terms:G``)

    # -- opening ---------------------------------------------------------------------------------

    def _meta(self) -> MilvusStore:
        if self.connection is None:
            self.connection = Connection(self.target, self.options.wait)
        return MilvusStore(self.connection, self.target.collection, "")

    def open(self) -> None:
        meta = self._meta()
        generation = self.building or meta.get_meta("current")
        self.store, self.manifest = None, None
        if generation is None:
            return
        text = meta.get_meta(f"manifest:{generation}")
        store = MilvusStore(meta.connection, self.target.collection, generation)
        if text is None:
            if self.building:
                self.store = store
                return
            raise IndexCorruptError(
                f"{self.location} names data {generation} without a manifest; repair cannot mend it"
            )
        try:
            found = Manifest.from_json(text)
        except (ValueError, KeyError, TypeError) as exc:
            raise IndexCorruptError(f"The manifest in {self.location} is unreadable: {exc}") from exc
        found = manifests.checked(
            found, self.location, self.options.model, None if self.building else self.options.chunking
        )
        if self._encoder is not None and not manifests.same_pipeline(self._encoder, found):
            self._encoder = None
        self.store, self.manifest = store, found
        self.terms_version = int(meta.get_meta(f"terms:{generation}") or 1)  # none: written before folding
        self.model = self.options.model or found.model.model

    def release(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.connection, self.store = None, None

    def follow(self) -> None:
        if self.locked or self.building:
            return
        current = self._meta().get_meta("current")
        if current != (self.store.prefix if self.store else None):
            self.open()
            if self.manifest is not None:
                self.notes.append(f"The index was rebuilt meanwhile; now using model '{self.manifest.model.model}'")

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Milvus takes many writers: nothing to hold, only the current data to start from."""
        if self.locked:
            yield
            return
        self.follow()
        self.locked = True
        try:
            yield
        finally:
            self.locked = False

    def own_paths(self) -> list[Path]:
        lite = self.target.lite
        return (
            []
            if lite is None
            else [lite, lite.parent / f".{lite.name}.lock", lite.parent / f".{lite.name}.semsearch.lock"]
        )

    def create(self) -> None:
        """The collections and manifest of a new index (the first generation has a fixed name, so
        writers creating one index at once create the same collections)."""
        if self.manifest is not None and self.store is not None:
            if self.terms_version < TERMS_VERSION:
                self.upgrade_terms()
            return
        planned = self.manifest or self.plan_manifest()
        if self.options.index_type is not None:
            planned = replace(planned, index_type=self.options.index_type)
        meta = self._meta()
        generation = self.building or f"{self.target.collection}__g0"
        store = MilvusStore(meta.connection, self.target.collection, generation)
        store.create(planned.model.dimension, milvus_index_type(planned.index_type, self.target.lite is not None))
        meta.put_meta(f"manifest:{generation}", planned.to_json())
        meta.put_meta(f"terms:{generation}", str(TERMS_VERSION))
        meta.put_meta("building" if self.building else "current", generation)
        self.store, self.manifest = store, planned

    def upgrade_terms(self) -> int:
        """Write again the lexical terms of every chunk stored with terms not folded as they are
        now (an index from before Traditional/Simplified folding), then record the terms version;
        how many chunks that was. Run by the first ingest into such an index, and by repair."""
        store = self._require()
        started = time.perf_counter()
        count = upkeep.reterm(store)
        self._meta().put_meta(f"terms:{store.prefix}", str(TERMS_VERSION))
        if self.terms_version < TERMS_VERSION or count:
            self.notes.append(
                f"Wrote the lexical terms of {count} chunks again, folding Traditional Chinese to Simplified "
                f"(once, {time.perf_counter() - started:.1f} s)"
            )
        self.terms_version = TERMS_VERSION
        return count

    def _require(self) -> MilvusStore:
        self.require_manifest()
        assert self.store is not None
        return self.store

    @contextmanager
    def reading(self) -> Iterator[None]:
        self._require()
        self._versions = {}
        try:
            yield
        finally:
            self._versions = None

    # -- the ledger --------------------------------------------------------------------------------

    def _ledger(self, expression: str) -> dict[str, dict[str, Any]]:
        """The newest ledger row of each path matching ``expression``, removals included. A row
        whose path no expression can name (written raw by a version before ``stored_path`` took
        CR and LF to ``hex:``) is never current: the next ingest writes the file again, and
        repair deletes the row."""
        store = self._require()
        newest: dict[str, dict[str, Any]] = {}
        for row in store.scan(store.ledger_name, expression or "version >= 0", LEDGER_FIELDS):
            if not expressible(row["path"]):
                continue
            if row["path"] not in newest or row["version"] > newest[row["path"]]["version"]:
                newest[row["path"]] = row
        return newest

    def _current(self, stored: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The current (published, not removed) ledger row of each of these stored paths."""
        found: dict[str, dict[str, Any]] = {}
        unique = [path for path in dict.fromkeys(stored) if expressible(path)]  # see _ledger
        for first in range(0, len(unique), _IN_BATCH):
            part = ", ".join(literal(p) for p in unique[first : first + _IN_BATCH])
            found |= self._ledger(f"path in [{part}]")
        return {path: row for path, row in found.items() if not row["deleted"]}

    def _version_of(self, paths: Sequence[str]) -> dict[str, int | None]:
        """Current version by stored path, remembered inside ``reading``."""
        cache = self._versions if self._versions is not None else {}
        missing = [p for p in dict.fromkeys(paths) if p not in cache]
        if missing:
            current = self._current(missing)
            cache.update({p: current[p]["version"] if p in current else None for p in missing})
        return {p: cache[p] for p in paths}

    def documents(self) -> dict[str, Document]:
        if self.store is None or self.manifest is None:
            return {}
        return {loaded_path(r["path"]): document_of(r) for r in self._ledger("").values() if not r["deleted"]}

    def documents_in(self, folders: Sequence[Path], files: Sequence[Path] = ()) -> dict[str, Document]:
        if self.store is None or self.manifest is None or not (folders or files):
            return {}
        rows = list(self._current([stored_path(str(f)) for f in files]).values()) if files else []
        if folders:
            inside = self._ledger(" or ".join(under(str(folder)) for folder in folders)).values()
            rows += [r for r in inside if not r["deleted"]]
        return {loaded_path(r["path"]): document_of(r) for r in rows}

    def chunk_count(self) -> int:
        if self.store is None or self.manifest is None:
            return 0
        return sum(int(r["chunks"]) for r in self._ledger("").values() if not r["deleted"])

    def _chunks_of(self, stored: str, version: int, vectors: bool = False) -> list[dict[str, Any]]:
        store = self._require()
        fields = [*CHUNK_FIELDS, "vector"] if vectors else CHUNK_FIELDS
        expression = f"path == {literal(stored)} and version == {version}"
        return sorted(store.scan(store.chunks_name, expression, fields), key=lambda r: r["seq"])

    def _whole(self, row: dict[str, Any]) -> tuple[list[Chunk], np.ndarray] | None:
        rows = self._chunks_of(row["path"], row["version"], vectors=True)
        if [r["seq"] for r in rows] != list(range(int(row["chunks"]))) or not rows:
            return None  # a damaged copy: embed again rather than spread the damage
        return [chunk_of(r) for r in rows], vectors_of(rows, self.require_manifest().model.dimension)

    def find_content(self, content_hash: str, chunks: Sequence[Chunk]) -> tuple[list[Chunk], np.ndarray] | None:
        store = self._require()
        rows = store.query(store.ledger_name, f"content_hash == {literal(content_hash)} and deleted == false", ["path"])
        current = self._current([r["path"] for r in rows])
        for row in current.values():
            found = self._whole(row) if row["content_hash"] == content_hash else None
            if found is not None and placed_alike(found[0], chunks):
                return found
        return None

    # -- staged work -------------------------------------------------------------------------------

    def staged(self, content_hash: str) -> dict[int, tuple[int, int, np.ndarray]]:
        store = self._require()
        dimension = self.require_manifest().model.dimension
        fields = ["seq", "start", "end", "vector"]
        rows = store.scan(store.staged_name, f"content_hash == {literal(content_hash)}", fields)
        return {int(r["seq"]): (int(r["start"]), int(r["end"]), vectors_of([r], dimension)[0]) for r in rows}

    def staged_files(self) -> dict[str, set[str]]:
        if self.store is None or self.manifest is None:
            return {}
        found: dict[str, set[str]] = defaultdict(set)
        for row in self.store.scan(self.store.staged_name, "seq >= 0", ["path", "content_hash"]):
            found[loaded_path(row["path"])].add(row["content_hash"])
        return dict(found)

    def unstage(self, content_hashes: Sequence[str]) -> None:
        store = self._require()
        for first in range(0, len(content_hashes), _IN_BATCH):
            part = ", ".join(literal(h) for h in content_hashes[first : first + _IN_BATCH])
            store.delete(store.staged_name, f"content_hash in [{part}]")

    # -- writing -----------------------------------------------------------------------------------

    def commit(self, published: Sequence[Published], staged: Sequence[Staged]) -> None:
        """Chunks first (invisible), then the ledger rows that publish them, then the older
        versions deleted; staged work kept by content hash and position."""
        store = self._require()
        if published:
            version = new_version()
            rows = [
                chunk_rows(stored_path(p.document.path), version, p.document, p.chunks, p.vectors) for p in published
            ]
            store.insert(store.chunks_name, [row for part in rows for row in part])
            ledger = [ledger_row(p.document, version, len(p.chunks)) for p in published]
            store.insert(store.ledger_name, ledger)
            self._prune([row["path"] for row in ledger], version)
            self.unstage([p.document.content_hash for p in published if not p.reused])
        store.upsert(
            store.staged_name,
            [
                {
                    "id": stable_id(part.content_hash, seq),
                    "content_hash": part.content_hash,
                    "path": stored_path(part.path),
                    "seq": seq,
                    "start": start,
                    "end": end,
                    "vector": vector.tolist(),
                }
                for part in staged
                for (seq, start, end), vector in zip(part.rows, part.vectors, strict=True)
            ],
        )

    def _prune(self, stored: Sequence[str], version: int) -> None:
        """Delete the rows of versions older than ``version`` of these paths; if a newer version
        was published meanwhile (another writer), this one lost: delete its rows too."""
        store = self._require()
        for first in range(0, len(stored), _IN_BATCH):
            paths = stored[first : first + _IN_BATCH]
            within = f"path in [{', '.join(literal(p) for p in paths)}]"
            store.delete(store.chunks_name, f"{within} and version < {version}")
            store.delete(store.ledger_name, f"{within} and version < {version}")
            lost = [r["path"] for r in store.query(store.ledger_name, f"{within} and version > {version}", ["path"])]
            if lost:
                mine = f"path in [{', '.join(literal(p) for p in set(lost))}] and version == {version}"
                store.delete(store.chunks_name, mine)
                store.delete(store.ledger_name, mine)

    def delete(self, paths: Sequence[str]) -> int:
        store = self._require()
        current = self._current([stored_path(p) for p in paths])
        if not current:
            return 0
        version = new_version()
        store.insert(store.ledger_name, [tombstone(path, version) for path in current])
        self._prune(list(current), version)
        return sum(int(row["chunks"]) for row in current.values())
