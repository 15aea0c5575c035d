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

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import DEFAULT_MODEL, ChunkSettings, Manifest
from ..errors import IndexCorruptError, IndexNotFoundError
from ..storage.layout import DATABASE, data_folder
from ..storage.locking import WriteLock
from ..storage.store import Store
from ..storage.vectors import FaissIndex
from . import manifest as manifests
from .replica import VectorReplica

if TYPE_CHECKING:
    from ..embedding.encoder import Encoder


@dataclass(frozen=True)
class Options:
    """How an index is opened: the model asked for (None: the index's own), the device, float32
    on CUDA, chunking and vector structure for a new index (or a change of structure), and what a
    write does while another process writes (fail, wait, or wait that many seconds)."""

    model: str | None = None
    device: str = "auto"
    fp32: bool = False
    chunking: ChunkSettings | None = None
    wait: bool | float = False
    index_type: str | None = None  # the vector structure asked for: auto, flat, ivf, hnsw; None: the manifest's


class Handle:
    """The index in folder ``root``, as ``options`` ask to open it. ``open`` reads it."""

    def __init__(self, root: Path, options: Options) -> None:
        self.root = root
        self.options = options
        self.data_folder = root  # the folder of the database and vector files in use
        self.store: Store | None = None
        self.manifest: Manifest | None = None
        self.model = options.model or DEFAULT_MODEL  # the model to load: asked for, else the index's
        self.replica = VectorReplica(root, root)
        self.notes: list[str] = []  # things worth telling the user, such as a rebuilt vector index
        self.locked = False  # this handle holds the writer lock
        self._encoder: Encoder | None = None

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

    def adopt(self, other: Handle) -> None:
        """Take over another handle's data (the result of a reindex); ``other`` lets go of it."""
        self.release()
        self.data_folder, self.store, self.manifest = other.data_folder, other.store, other.manifest
        self.model, self._encoder, self.replica = other.model, other._encoder, other.replica
        self.options = replace(self.options, model=other.options.model)
        self.notes.extend(other.notes)
        other.store = None

    # -- the model ---------------------------------------------------------------------------

    def encoder(self) -> Encoder:
        """The embedding pipeline, loaded on first use (and checked against the manifest)."""
        if self._encoder is None:
            from ..embedding.encoder import Encoder

            revision = self.manifest.model.revision if self.manifest else None
            encoder = Encoder.load(self.model, self.options.device, revision=revision, fp32=self.options.fp32)
            if self.manifest is not None:
                manifests.check_model(encoder, self.manifest, self.model, self.root)
            self._encoder = encoder
        return self._encoder

    def share_encoder(self, other: Handle) -> None:
        """Use ``other``'s loaded model, if any (another handle on the same index)."""
        self._encoder = other._encoder

    # -- writing -----------------------------------------------------------------------------

    def plan_manifest(self) -> Manifest:
        """The manifest a new index will get; checks the options before anything is written."""
        return manifests.plan(self.encoder(), self.options.chunking, self.options.index_type)

    def writable_store(self) -> Store:
        """The store, created with its manifest for a new index. Hold the lock."""
        if self.store is None:
            self.store = Store.open(self.data_folder, create=True)
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

    def delete(self, paths: list[str]) -> int:
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
