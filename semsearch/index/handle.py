"""One open index: its folder, the data in use, the database, the manifest, the vector replica,
the model, and the writer lock. What ingest, search and maintenance work on.

An index folder holds ``write.lock``, ``CURRENT`` and (until a reindex) the data itself; the
data folder holds ``semsearch.db`` and the vector files. Readers take a SQLite snapshot and bring
the replica up to it, so a crash, a query during an ingest and a long-lived process all see one
committed state. Writers (ingest, remove, repair, check) hold ``write.lock``; only they write
vector files, except that a reader which caught up may save its result while nobody writes.
A ``Handle`` is not thread-safe; ``Index`` gives one call at a time to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..config import ChunkSettings, Manifest
from ..documents.chunking import Chunk
from ..documents.prepare import Document
from ..documents.terms import match_expression
from ..errors import IndexCorruptError, IndexNotFoundError, SemsearchError
from ..query import Where
from ..results import Check, IndexInfo
from ..retrieval import search
from ..storage.consistency import checks
from ..storage.layout import DATABASE, build_folder, data_folder, pending_builds, publish
from ..storage.layout import discard as discard_folder
from ..storage.locking import WriteLock
from ..storage.rows import ChunkRow
from ..storage.store import Store
from ..storage.vectors import FaissIndex, choose, gpu_available
from . import manifest as manifests
from .backend import Backend, Candidates, Options, Published, Staged, describe_info
from .replica import VectorReplica

__all__ = ["Handle", "Options"]


class Handle(Backend):
    """The local backend: the index in folder ``root``, as ``options`` ask to open it. ``open``
    reads it."""

    def __init__(self, root: Path, options: Options) -> None:
        super().__init__(str(root), options)
        self.root = root
        self.data_folder = root  # the folder of the database and vector files in use
        self.store: Store | None = None
        self.replica = VectorReplica(root, root)
        self.locked = False  # this handle holds the writer lock
        self._scopes: dict[tuple[Where, str], search.Scope | None] = {}  # inside ``reading``

    # -- opening, locking, following a reindex ---------------------------------------------

    def open(self) -> None:
        """(Re)open the current data folder: database, manifest, and checks against them."""
        self.release()
        for attempt in range(3):
            data = data_folder(self.root)
            try:
                store = Store.open(data) if (data / DATABASE).exists() else None
                break
            except IndexCorruptError:
                if attempt == 2 or data_folder(self.root) == data:
                    raise  # not a reindex switching folders under us: a real problem
        try:
            found = manifests.read(store, self.root, self.options.model, self.options.chunking) if store else None
        except BaseException:
            if store is not None:
                store.close()
            raise
        if self._encoder is not None and found is not None and not manifests.same_pipeline(self._encoder, found):
            self._encoder = None  # loaded for another model than the index's
        self.data_folder, self.store, self.manifest = data, store, found
        self.model = self.options.model or (found.model.model if found else self.model)
        self.replica = VectorReplica(self.root, data)

    def build_in(self, data: Path) -> None:
        """Work on a copy being built in ``data`` (a reindex), under the lock the caller holds:
        its database and manifest if it has them already (a reindex resumed)."""
        self.release()
        self.data_folder, self.locked = data, True
        self.replica = VectorReplica(self.root, data)
        if (data / DATABASE).exists():
            self.store = Store.open(data)
            self.manifest = manifests.read(self.store, self.root, self.options.model, None)

    def release(self) -> None:
        """Close the database (the handle can be opened again)."""
        if self.store is not None:
            self.store.close()
            self.store = None

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the writer lock inside the block (re-entrant), and start from the current data."""
        if self.locked:
            yield
            return
        with WriteLock(self.root, self.options.wait):
            self.locked = True
            try:
                if self.store is None or data_folder(self.root) != self.data_folder:
                    self.open()  # another writer may have created or rebuilt the index
                yield
            finally:
                self.locked = False

    def follow(self) -> None:
        """Reopen when a reindex by another process switched the index to new data, or when an
        index was created since this handle found none."""
        if self.locked:
            return
        if data_folder(self.root) != self.data_folder:
            self.open()
            if self.manifest is not None:
                self.notes.append(f"The index was rebuilt meanwhile; now using model '{self.manifest.model.model}'")
        elif self.manifest is None and (self.data_folder / DATABASE).exists():
            self.open()

    def require(self) -> tuple[Store, Manifest]:
        """The database and manifest; IndexNotFoundError where there is no index yet."""
        if self.store is None or self.manifest is None:
            raise IndexNotFoundError(f"No index at {self.root}; run 'semsearch ingest DIR' first")
        return self.store, self.manifest

    def rebuild(self, options: Options, chunking: ChunkSettings | None) -> Handle:
        new = Handle(self.root, options)
        new.build_in(_resume_or_start(self.root, options.model or self.model, chunking))
        return new

    def switch_to(self, new: Backend) -> None:
        assert isinstance(new, Handle)
        publish(self.root, new.data_folder)
        old = self.data_folder
        self.release()
        discard_folder(self.root, old)
        self.adopt(new)

    def discard(self, new: Backend) -> None:
        assert isinstance(new, Handle)
        new.release()
        discard_folder(self.root, new.data_folder)

    def adopt(self, other: Handle) -> None:
        """Take over another handle's data (the result of a reindex); ``other`` lets go of it."""
        self.release()
        self.data_folder, self.store, self.manifest = other.data_folder, other.store, other.manifest
        self.model, self._encoder, self.replica = other.model, other._encoder, other.replica
        self.options = replace(self.options, model=other.options.model)
        self.notes.extend(other.notes)
        other.store = None

    # -- writing -----------------------------------------------------------------------------

    def own_paths(self) -> list[Path]:
        return [self.root]

    def create(self) -> None:
        self.writable_store()

    def writable_store(self) -> Store:
        """The store, created with its manifest for a new index. Hold the lock."""
        if self.store is None:
            self.store = Store.open(self.data_folder, create=True)
            if self.manifest is not None and self.store.manifest() is None:  # given: a migration's
                self.store.set_manifest(self.manifest)
        if self.manifest is None:
            planned = self.plan_manifest()
            self.store.set_manifest(planned)
            self.manifest = planned
        return self.store

    def vectors(self) -> FaissIndex:
        """The vector index as of the database's committed state (see ``VectorReplica.current``)."""
        store, manifest = self.require()
        return self.replica.current(store, manifest.model.dimension, self.locked, self.notes)

    def committed(self) -> None:
        """A commit of this handle's, applied to the vector index too."""
        store, _ = self.require()
        self.replica.committed(store)

    def delete(self, paths: Sequence[str]) -> int:
        """Delete documents from the database, then from the vector index; how many chunks went.
        Hold the lock."""
        store, _ = self.require()
        vectors = self.vectors()
        if not paths:
            return 0
        ids = store.chunk_ids_of(paths)
        with store.transaction():
            store.delete_documents(paths)
        vectors.remove(np.array(ids, dtype=np.int64))
        self.replica.committed(store)
        return len(ids)

    def save(self) -> None:
        self.save_vectors()

    def save_vectors(self) -> None:
        """Save the vector index as the file of the current state. Holding the lock, first record
        a newly asked-for structure and rebuild the vectors if they no longer have the right one;
        without it, only as a best-effort cache."""
        if self.store is None:
            return
        if self.locked and self.manifest is not None and self.replica.vectors is not None:
            wanted = self.options.index_type
            if wanted is not None and wanted != self.manifest.index_type:
                self.manifest = replace(self.manifest, index_type=wanted)
                self.store.set_manifest(self.manifest)
            self.replica.reshape(self.store, self.manifest.index_type, self.manifest.model.dimension, self.notes)
        self.replica.save(self.store, self.locked)

    def commit(self, published: Sequence[Published], staged: Sequence[Staged]) -> None:
        """One SQLite transaction: the published documents replace their old rows, chunks and
        vectors, and ``staged`` is kept; then the same change in the vector index."""
        store = self.writable_store()
        vectors = self.vectors()
        old = store.chunk_ids_of([p.document.path for p in published])
        added: list[int] = []
        with store.transaction(visible=bool(published)):
            for item in published:
                added.extend(store.put_document(item.document, item.chunks, item.vectors))
            store.unstage([item.document.content_hash for item in published if not item.reused])
            for part in staged:
                store.stage(part.content_hash, part.path, part.rows, part.vectors)
        if published:
            vectors.remove(np.array(old, dtype=np.int64))
            vectors.add(np.array(added, dtype=np.int64), np.concatenate([item.vectors for item in published]))
            self.committed()

    # -- the ledger, staged work ---------------------------------------------------------------

    def documents(self) -> dict[str, Document]:
        return self.store.documents() if self.store is not None else {}

    def documents_in(self, folders: Sequence[Path], files: Sequence[Path] = ()) -> dict[str, Document]:
        return self.store.documents_in(folders, files) if self.store is not None else {}

    def find_content(self, content_hash: str, chunks: Sequence[Chunk]) -> tuple[list[Chunk], np.ndarray] | None:
        store, manifest = self.require()
        return store.find_content(content_hash, chunks, manifest.model.dimension)

    def staged(self, content_hash: str) -> dict[int, tuple[int, int, np.ndarray]]:
        store, manifest = self.require()
        return store.staged(content_hash, manifest.model.dimension)

    def staged_files(self) -> dict[str, set[str]]:
        return self.store.staged_files() if self.store is not None else {}

    def unstage(self, content_hashes: Sequence[str]) -> None:
        store, _ = self.require()
        with store.transaction(visible=False):
            store.unstage(content_hashes)

    def chunk_count(self) -> int:
        return self.store.counts()["chunks"] if self.store is not None else 0

    # -- searching -------------------------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[None]:
        """One SQLite snapshot; the vector index is brought up to it on first use."""
        store, _ = self.require()
        with store.snapshot():
            self._scopes = {}
            try:
                yield
            finally:
                self._scopes = {}

    def _scope(self, where: Where | None, base: str) -> search.Scope | None:
        if where is None or where.empty:
            return None
        if (where, base) not in self._scopes:
            self._scopes[(where, base)] = search.scope(self.require()[0], where, base)
        return self._scopes[(where, base)]

    def dense(self, embedded: np.ndarray, depth: int, where: Where | None, base: str) -> list[Candidates]:
        store, _ = self.require()
        return search.dense_candidates(self.vectors(), store, embedded, depth, self._scope(where, base))

    def lexical(self, text: str, depth: int, where: Where | None, base: str) -> Candidates:
        store, _ = self.require()
        within = self._scope(where, base)
        expression = match_expression(text)
        if not expression or (within is not None and not within.documents):
            return []
        return store.lexical_search(expression, depth, within.documents if within else None)

    def chunks(self, ids: Sequence[int]) -> Mapping[int, ChunkRow]:
        return self.require()[0].chunks(ids)

    def neighbours(self, windows: Sequence[tuple[int, int, int]]) -> list[ChunkRow]:
        return self.require()[0].neighbours(windows)

    def passes(self, where: Where, base: str) -> bool:
        found = search.scope(self.require()[0], where, base)
        return found is None or bool(found.documents)

    def suffixes(self) -> list[str]:
        return self.require()[0].suffixes()

    # -- looking after it ------------------------------------------------------------------------

    def check(self) -> list[Check]:
        """SQLite sound, each chunk with one vector in SQLite and in the current vector file and
        the reverse, no orphan documents (``storage.consistency.checks``), under the lock."""
        with self.lock():
            store, manifest = self.require()
            found = checks(store, self.data_folder, manifest.model.dimension)
            stale = [c for c in found if c.name == "vector index file current" and not c.ok]
            if not stale:
                return found
            # no vector file of the database's state: a write stopped between its commit and its
            # save (kill -9, a power cut). The file is a cache of the record, brought up to date
            # from the stored vectors as any reader does; check what that gives
            notes = len(self.notes)
            try:
                self.vectors()
                self.save_vectors()
            except SemsearchError:  # the stored vectors themselves are damaged: as found
                del self.notes[notes:]
                return found
            told = "; ".join(self.notes[notes:]) or "brought up to date from the stored vectors"
            found = checks(store, self.data_folder, manifest.model.dimension)
            return [replace(c, detail=f"{c.detail} ({told})") if c.name == stale[0].name else c for c in found]

    def repair(self) -> list[Check]:
        """Rebuild the vector index from the stored vectors (as the structure asked for), bring
        the lexical index in step with the chunks, then ``check``."""
        with self.lock():
            store, manifest = self.require()
            dimension, count = manifest.model.dimension, len(store.chunk_ids())
            structure = choose(self.options.index_type or manifest.index_type, count, dimension, gpu_available())
            self.replica.rebuild(store, dimension, structure)
            self.save_vectors()
            store.repair_lexical()
            return self.check()

    def info(self) -> IndexInfo:
        self.follow()
        store, _ = self.require()
        with store.snapshot():
            counts = store.counts()
            vectors = self.vectors()
        self.save_vectors()
        size = sum(f.stat().st_size for f in self.data_folder.iterdir() if f.is_file())
        path, found = str(self.root.resolve()), (counts["documents"], counts["chunks"])
        return describe_info(self, path, found, vectors.describe(), vectors.device, size)

    def export(self, paths: Sequence[str]) -> Iterator[Published]:
        store, manifest = self.require()
        with store.snapshot():
            documents = store.documents()
            for path in paths:
                document = documents.get(path)
                found = store.document_chunks(path, manifest.model.dimension) if document else None
                if document is not None and found is not None:
                    yield Published(document, *found)


def _resume_or_start(root: Path, model: str, chunking: ChunkSettings | None) -> Path:
    """An unfinished rebuild with the same model (and chunking, if given) to resume, else a new
    folder; other unfinished rebuilds are deleted."""
    chosen: Path | None = None
    for folder in pending_builds(root):
        try:
            store = Store.open(folder)
            manifest = store.manifest()
            store.close()
        except Exception:  # a damaged leftover, whatever the damage, is simply started over
            manifest = None
        resumable = (
            manifest is not None and manifests.same_model(model, manifest) and chunking in (None, manifest.chunking)
        )
        if chosen is None and resumable:
            chosen = folder
        else:
            discard_folder(root, folder)
    return chosen or build_folder(root)
