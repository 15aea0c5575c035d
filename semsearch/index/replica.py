"""The vector replica: an index's FAISS index in memory, and the database state it mirrors.

SQLite is the record; the replica is a cache of it. Readers bring it up to the state their
snapshot reads (``current``); a writer marks its own commits (``committed``); either saves it as
the file of that state (``save``): the writer always, a reader when nobody writes, and then only
as a cache, never failing its caller. Only a vector index of a state the database went through is
brought up to date (by set difference on ids); one of a state it never had (a database restored
from a backup, or one that lost its journal) is rebuilt from the stored vectors instead.
"""

from __future__ import annotations

import time
from contextlib import suppress
from pathlib import Path

from ..storage.consistency import rebuild, sync
from ..storage.locking import WriteLock, is_locked
from ..storage.store import State, Store
from ..storage.vectors import FaissIndex, choose


class VectorReplica:
    """The in-memory vector index of the data in ``data_folder`` of the index at ``root``."""

    def __init__(self, root: Path, data_folder: Path) -> None:
        self.root, self.data_folder = root, data_folder
        self.vectors: FaissIndex | None = None
        self.synced: State | None = None  # the database state ``vectors`` mirrors
        self.unsaved = False  # ``vectors`` is newer than the newest vector file

    def current(self, store: Store, dimension: int, locked: bool, notes: list[str]) -> FaissIndex:
        """The vector index as of the database's committed state. Call inside
        ``store.snapshot()`` (or holding the lock) so the chunk rows read next belong to the
        same state. What was out of step is told in ``notes``, once."""
        state = store.state()
        if self.vectors is not None and self.synced == state:
            return self.vectors
        if self.vectors is not None and (self.synced is None or not store.knows(self.synced)):
            self.vectors, self.synced = None, None
        loaded = self.vectors is None
        saved: State | None = self.synced
        rejected: list[Path] = []
        if self.vectors is None:
            self.vectors, saved, rejected = FaissIndex.load_newest(self.data_folder, dimension, store.knows)
        changed = sync(self.vectors, store, dimension)
        self.synced = state
        self.unsaved = self.unsaved or changed or saved != state or bool(rejected)
        if rejected:
            self._forget_lost(store, dimension, rejected, locked, notes)
        elif changed and loaded:  # the file on disk was behind, or did not hold what it says
            notes.append(self._out_of_step(saved, state, locked))
        return self.vectors

    def committed(self, store: Store) -> None:
        """The owner committed a change it applied to ``vectors`` too: they mirror that state."""
        self.synced, self.unsaved = store.state(), True

    def rebuild(self, store: Store, dimension: int, structure: str, use_gpu: bool = True) -> FaissIndex:
        """A new ``structure`` vector index of every stored vector, now the replica's."""
        self.vectors = rebuild(store, dimension, structure, use_gpu)
        self.committed(store)
        return self.vectors

    def reshape(self, store: Store, requested: str, dimension: int, notes: list[str]) -> None:
        """Rebuild from the stored vectors when the structure ``requested`` (auto, flat, ivf or
        hnsw) picks another than the one in memory, or it is worn. Hold the lock."""
        vectors = self.vectors
        if vectors is None:
            return
        structure = choose(requested, len(vectors), dimension, vectors.use_gpu)
        if structure == vectors.structure and not vectors.worn(len(vectors)):
            return
        started = time.perf_counter()
        built = self.rebuild(store, dimension, structure, vectors.use_gpu)
        notes.append(
            f"Vector index built as {built.describe()} for {len(built)} vectors "
            f"in {time.perf_counter() - started:.1f} s (was {vectors.describe()})"
        )

    def save(self, store: Store, locked: bool) -> None:
        """Write the vector file of the current state: holding the lock, or when it is free.
        A reader's save is a cache's: best-effort, it never fails the call (a full disk, a
        read-only folder)."""
        if self.vectors is None or not self.unsaved:
            return
        if locked:
            self.vectors.save(self.data_folder, store.state())
            self.unsaved = False
            return
        with suppress(Exception), WriteLock(self.root, wait=False):
            if self.synced is not None and store.state() == self.synced:  # nobody committed since
                self.vectors.save(self.data_folder, self.synced)
                self.unsaved = False

    def _forget_lost(self, store: Store, dimension: int, rejected: list[Path], locked: bool, notes: list[str]) -> None:
        """Vector files of states this database never had: say so, and (holding the lock) make
        sure new chunk ids start past the ids they hold."""
        if locked:
            for path in rejected:
                with suppress(Exception):
                    ids = FaissIndex.load(path, dimension, use_gpu=False).ids()
                    if len(ids):
                        store.reserve_ids(int(ids.max()))
        names = ", ".join(p.name for p in rejected)
        notes.append(
            f"The vector file {names} mirrors a state this database never had (restored from a backup, or its "
            "journal lost?); the vector index was rebuilt from the stored vectors, nothing re-embedded"
        )

    def _out_of_step(self, saved: State | None, state: State, locked: bool) -> str:
        if not locked and is_locked(self.root):
            return "Another process is writing to this index; answering from what it has committed so far"
        if saved is not None and saved[0] == state[0]:
            return (
                f"The vector file of generation {saved[0]} did not hold what the database does (damaged?); "
                "brought it in step from the stored vectors, nothing re-embedded"
            )
        found = "no vector file" if saved is None else f"vector file of generation {saved[0]}, database at {state[0]}"
        return (
            f"The vector index was behind the database ({found}; an interrupted ingest?); "
            "brought it up to date from the stored vectors, nothing re-embedded"
        )
