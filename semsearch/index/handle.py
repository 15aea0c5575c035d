"""Open an index, search it, check and repair it: the module that ties store, vectors and encoder.

Readers take a SQLite snapshot and bring the vector index up to it (``consistency.sync``), so a
crash, a query during an ingest and a long-lived process all see one committed state. Writers
(ingest, remove, repair, check) hold ``write.lock``; only they write vector files, except that a
reader which caught up may save its result while nobody writes.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import numpy as np

from ..config import DEFAULT_MAX_FILE_BYTES, DEFAULT_MODEL, ChunkSettings, Manifest
from ..documents.reading import is_within
from ..errors import (
    IndexClosedError,
    IndexCorruptError,
    IndexNotFoundError,
    InvalidOptionError,
    ModelMismatchError,
    SourceNotFoundError,
)
from ..query import DEFAULT_MODE, RRF_K, Query, Where
from ..results import Check, Hit, IndexInfo, RemoveReport
from ..retrieval import search
from ..storage.consistency import checks, rebuild, sync
from ..storage.layout import DATABASE, data_folder
from ..storage.locking import WriteLock, is_locked
from ..storage.store import State, Store, guard
from ..storage.vectors import VectorIndex, choose, gpu_available

P = ParamSpec("P")
R = TypeVar("R")

if TYPE_CHECKING:
    from ..embedding.encoder import Encoder
    from ..results import IngestReport


def open_index(
    path: str | os.PathLike[str] = ".semsearch",
    model: str | None = None,
    *,
    device: str = "auto",
    fp32: bool = False,
    chunking: ChunkSettings | None = None,
    create: bool = True,
    wait: bool | float = False,
    index_type: str | None = None,
) -> Index:
    """Open the index in folder ``path``, or prepare a new one there (written on first ingest).

    ``model`` (a hub id or a local sentence-transformers folder) is needed only for a new index;
    for an existing one it must be the model the index was built with. ``create=False`` raises
    IndexNotFoundError when there is no index yet. ``wait`` is what a write (ingest, remove,
    repair, check) does when another process is writing: fail at once (False), wait (True) or
    wait up to that many seconds.
    ``index_type`` (auto, flat, ivf or hnsw) sets the vector structure the next write saves;
    auto picks exact search while it is fast enough, then IVF.
    """
    if index_type is not None:
        choose(index_type, 0, 1, False)  # refuse an unknown type before anything is opened
    if os.path.exists(path) and not os.path.isdir(path):
        raise IndexNotFoundError(f"{path} is a file, not an index folder; give --index a folder")
    index = Index(Path(path), model, device, fp32, chunking, wait, index_type)
    index._open_data()
    if index.manifest is None and not create:
        index.close()
        raise IndexNotFoundError(f"No index at {path}; run 'semsearch ingest DIR' first")
    return index


def same_model(model: str, manifest: Manifest) -> bool:
    """Whether ``model`` names the model ``manifest`` was built with (a moved local copy counts)."""
    if model == manifest.model.model:
        return True
    if Path(model).expanduser().is_dir() and manifest.model.revision is None:
        from ..embedding.hub import fingerprint

        return fingerprint(Path(model).expanduser()) == manifest.model.fingerprint
    return False


def _serialized(method: Callable[P, R]) -> Callable[P, R]:
    """Run an ``Index`` method holding the index's mutex: one call at a time per handle."""

    @functools.wraps(method)
    def locked(*args: P.args, **kwargs: P.kwargs) -> R:
        index: Index = args[0]  # type: ignore[assignment]
        with index._mutex:
            if index._closed and method.__name__ != "close":
                raise IndexClosedError(f"The index at {index.folder} was closed; open it again")
            return method(*args, **kwargs)

    return locked


class Index:
    """A semsearch index: documents, chunks and vectors in one folder. Use ``open_index``.

    A handle may be used from several threads; its calls then run one at a time (an ingest
    holds it up to the end). For searches beside an ingest in one process, give each its own
    handle (``reopen``).
    """

    def __init__(
        self,
        folder: Path,
        model: str | None,
        device: str,
        fp32: bool,
        chunking: ChunkSettings | None,
        wait: bool | float,
        index_type: str | None = None,
    ) -> None:
        self.folder = folder  # the index folder: write.lock, CURRENT and (until a reindex) the data
        self.data = folder  # the folder of the database and vector files in use
        self.manifest: Manifest | None = None
        self.notes: list[str] = []  # things worth telling the user, such as a rebuilt vector index
        self._requested = model
        self._model = model or DEFAULT_MODEL
        self._device = device
        self._fp32 = fp32
        self._chunking = chunking
        self._wait = wait
        self._index_type = index_type  # None: the manifest's
        self._store: Store | None = None
        self._encoder: Encoder | None = None
        self._vectors: VectorIndex | None = None
        self._synced: State | None = None  # the database state self._vectors matches
        self._locked = False  # this object holds the writer lock
        self._unsaved = False  # self._vectors is newer than the newest vector file
        self._mutex = threading.RLock()  # one call at a time: the SQLite connection is shared
        self._closed = False

    @_serialized
    def close(self) -> None:
        """Close the database; later calls raise IndexClosedError."""
        self._release()
        self._closed = True

    def _release(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- opening, locking, following a reindex ----------------------------------------------

    def _open_data(self) -> None:
        """(Re)open the current data folder: database, manifest, and checks against them."""
        self._release()
        for attempt in range(3):
            data = data_folder(self.folder)
            try:
                store = Store.open(data) if (data / DATABASE).exists() else None
                break
            except IndexCorruptError:
                if attempt == 2 or data_folder(self.folder) == data:
                    raise  # not a reindex switching folders under us: a real problem
        try:
            manifest = self._read_manifest(store) if store else None
        except BaseException:
            if store is not None:
                store.close()
            raise
        if self._encoder is not None and manifest is not None and not _same_pipeline(self._encoder, manifest):
            self._encoder = None  # loaded for another model than the index's
        self.data, self._store, self.manifest = data, store, manifest
        self._model = self._requested or (manifest.model.model if manifest else self._model)
        self._vectors, self._synced = None, None

    def _read_manifest(self, store: Store) -> Manifest | None:
        with guard(store.path):
            manifest = store.manifest()
            if manifest is None:
                if store.counts()["chunks"]:
                    raise IndexCorruptError(
                        f"{store.path} has chunks but no manifest; rebuild the index into a new --index"
                    )
                return None
        if self._requested is not None and not same_model(self._requested, manifest):
            raise ModelMismatchError(
                f"The index at {self.folder} was built with model '{manifest.model.model}' "
                f"({manifest.model.dimension}-d); '{self._requested}' was asked for. Use the index's "
                "model, 'semsearch ingest --reindex --model NEW' to re-embed it, or another --index"
            )
        if self._chunking is not None and self._chunking != manifest.chunking:
            raise InvalidOptionError(
                f"The index at {self.folder} was built with {manifest.chunking.chunk_tokens}-token chunks and "
                f"{manifest.chunking.overlap_tokens}-token overlap; --reindex to change them"
            )
        return manifest

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """Hold the writer lock inside the block (re-entrant), and start from the current data."""
        if self._locked:
            yield
            return
        with WriteLock(self.folder, self._wait):
            self._locked = True
            try:
                if self._store is None or data_folder(self.folder) != self.data:
                    self._open_data()  # another writer may have created or rebuilt the index
                yield
            finally:
                self._locked = False

    def _follow(self) -> None:
        """Reopen when a reindex by another process switched the index to new data, or when an
        index was created since this handle found none."""
        if self._locked:
            return
        if data_folder(self.folder) != self.data:
            self._open_data()
            if self.manifest is not None:
                self.notes.append(f"The index was rebuilt meanwhile; now using model '{self.manifest.model.model}'")
        elif self.manifest is None and (self.data / DATABASE).exists():
            self._open_data()

    def _require(self) -> tuple[Store, Manifest]:
        if self._store is None or self.manifest is None:
            raise IndexNotFoundError(f"No index at {self.folder}; run 'semsearch ingest DIR' first")
        return self._store, self.manifest

    @property
    def encoder(self) -> Encoder:
        """The embedding pipeline, loaded on first use."""
        with self._mutex:
            return self._load_encoder()

    def _load_encoder(self) -> Encoder:
        if self._encoder is None:
            from ..embedding.encoder import Encoder

            revision = self.manifest.model.revision if self.manifest else None
            encoder = Encoder.load(self._model, self._device, revision=revision, fp32=self._fp32)
            if self.manifest is not None:
                built = self.manifest.model
                if not _same_pipeline(encoder, self.manifest):
                    raise ModelMismatchError(
                        f"Model '{self._model}' is now {encoder.dimension}-d with fingerprint "
                        f"{encoder.info.fingerprint}; the index at {self.folder} was built with "
                        f"{built.dimension}-d, fingerprint {built.fingerprint}. Use the original model files, "
                        "or 'semsearch ingest --reindex' to re-embed with these"
                    )
            self._encoder = encoder
        return self._encoder

    # -- the vector index, kept in step with the database -----------------------------------

    def _current_vectors(self) -> VectorIndex:
        """The vector index as of the database's committed state. Call inside ``store.snapshot()``
        (or holding the lock) so the chunk rows read next belong to the same state.

        Only a vector index of a state this database went through is brought up to date (by
        set difference on ids); one of a state it never had (a database restored from a
        backup, or one that lost its journal) is rebuilt from the stored vectors instead."""
        store, manifest = self._require()
        state = store.state()
        if self._vectors is not None and self._synced == state:
            return self._vectors
        if self._vectors is not None and (self._synced is None or not store.knows(self._synced)):
            self._vectors, self._synced = None, None
        loaded = self._vectors is None
        saved: State | None = self._synced
        rejected: list[Path] = []
        if self._vectors is None:
            self._vectors, saved, rejected = VectorIndex.load_newest(self.data, manifest.model.dimension, store.knows)
        changed = sync(self._vectors, store, manifest.model.dimension)
        self._synced = state
        self._unsaved = self._unsaved or changed or saved != state or bool(rejected)
        if rejected:
            self._forget_lost(store, rejected)
        elif changed and loaded:  # the file on disk was behind, or did not hold what it says: say so once
            self._note_out_of_step(saved, state)
        return self._vectors

    def _forget_lost(self, store: Store, rejected: list[Path]) -> None:
        """Vector files of states this database never had: say so, and (holding the lock) make
        sure new chunk ids start past the ids they hold."""
        if self._locked:
            dimension = self.manifest.model.dimension if self.manifest else 0
            for path in rejected:
                with suppress(Exception):
                    ids = VectorIndex.load(path, dimension, use_gpu=False).ids()
                    if len(ids):
                        store.reserve_ids(int(ids.max()))
        names = ", ".join(p.name for p in rejected)
        self.notes.append(
            f"The vector file {names} mirrors a state this database never had (restored from a backup, or its "
            "journal lost?); the vector index was rebuilt from the stored vectors, nothing re-embedded"
        )

    def _note_out_of_step(self, saved: State | None, state: State) -> None:
        if not self._locked and is_locked(self.folder):
            self.notes.append("Another process is writing to this index; answering from what it has committed so far")
            return
        if saved is not None and saved[0] == state[0]:
            self.notes.append(
                f"The vector file of generation {saved[0]} did not hold what the database does (damaged?); "
                "brought it in step from the stored vectors, nothing re-embedded"
            )
            return
        found = "no vector file" if saved is None else f"vector file of generation {saved[0]}, database at {state[0]}"
        self.notes.append(
            f"The vector index was behind the database ({found}; an interrupted ingest?); "
            "brought it up to date from the stored vectors, nothing re-embedded"
        )

    def _save_vectors(self) -> None:
        """Write the vector file for the current state: holding the lock, or when it is free.
        Holding the lock, first rebuild the vector index if it no longer has the right structure.
        A reader's save is a cache's: it is best-effort and never fails the call (a full disk, a
        read-only folder)."""
        if self._locked and self._vectors is not None and self._store is not None:
            self._reshape(self._store, self._vectors)
        if self._vectors is None or self._store is None or not self._unsaved:
            return
        if self._locked:
            self._vectors.save(self.data, self._store.state())
            self._unsaved = False
            return
        with suppress(Exception), WriteLock(self.folder, wait=False):
            if self._store.state() == self._synced:  # nobody committed since we synced
                self._vectors.save(self.data, self._synced)
                self._unsaved = False

    def _reshape(self, store: Store, vectors: VectorIndex) -> None:
        """Rebuild ``vectors`` from the stored ones when the wanted structure (``choose``) is
        another, or it is ``worn``; record a newly asked-for index type. Hold the lock."""
        manifest = self.manifest
        if manifest is None:
            return
        if self._index_type is not None and self._index_type != manifest.index_type:
            self.manifest = manifest = replace(manifest, index_type=self._index_type)
            store.set_manifest(manifest)
        dimension = manifest.model.dimension
        kind = choose(manifest.index_type, len(vectors), dimension, vectors.use_gpu)
        if kind == vectors.kind and not vectors.worn(len(vectors)):
            return
        started = time.perf_counter()
        self._vectors = rebuild(store, dimension, kind, vectors.use_gpu)
        self._synced, self._unsaved = store.state(), True
        self.notes.append(
            f"Vector index built as {self._vectors.describe()} for {len(self._vectors)} vectors "
            f"in {time.perf_counter() - started:.1f} s (was {vectors.describe()})"
        )

    def _plan_manifest(self) -> Manifest:
        """The manifest a new index will get; checks the options before anything is written."""
        encoder = self.encoder
        limit = encoder.max_text_tokens
        chunking = self._chunking or ChunkSettings(chunk_tokens=min(ChunkSettings().chunk_tokens, limit))
        if not 1 <= chunking.chunk_tokens <= limit:
            raise InvalidOptionError(f"--chunk-tokens must be between 1 and {limit} for this model")
        if not 0 <= chunking.overlap_tokens < chunking.chunk_tokens:
            raise InvalidOptionError("--overlap-tokens must be at least 0 and less than --chunk-tokens")
        return Manifest(model=encoder.info, chunking=chunking, index_type=self._index_type or "auto")

    def _writable_store(self) -> Store:
        """The store, created with its manifest for a new index. Hold the lock."""
        if self._store is None:
            self._store = Store.open(self.data, create=True)
        if self.manifest is None:
            manifest = self._plan_manifest()
            with guard(self._store.path):
                self._store.set_manifest(manifest)
            self.manifest = manifest
        return self._store

    def _adopt(self, other: Index) -> None:
        """Take over another Index's state (the result of a reindex)."""
        self._release()
        self.data, self.manifest, self._store = other.data, other.manifest, other._store
        self._model, self._requested, self._encoder = other._model, other._requested, other._encoder
        self._vectors, self._synced, self._unsaved = other._vectors, other._synced, other._unsaved
        self.notes.extend(other.notes)
        other._store = None

    # -- ingest, search, info, remove, check, repair ----------------------------------------

    @_serialized
    def ingest(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        progress: bool | None = False,
        exclude: Sequence[str] = (),
        max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
        within: Sequence[str | os.PathLike[str]] = (),
        ignore_files: bool = True,
    ) -> IngestReport:
        """Add, update and remove documents so the index matches ``paths`` (files or folders).

        Unchanged files (same size and mtime, or same content) are not embedded again, nor are
        files whose content is indexed under another path (renamed or copied); files gone from
        an ingested folder are removed. ``exclude`` takes .gitignore-style patterns, applied after
        the ``.gitignore`` and ``.ignore`` files found in the folders (unless ``ignore_files`` is
        False); files over ``max_file_bytes`` are skipped. ``progress`` shows a bar on stderr
        (None: on a terminal only). Work is committed every 256 embedded chunks, a large file's
        included (it is published whole at its end); Ctrl-C stops at the next batch with
        ``Interrupted``, and the next run goes on from there. The model is loaded only when
        something needs embedding. With ``within``, nothing outside those folders is read,
        symbolic links included.
        """
        from .ingest import ingest

        return ingest(
            self,
            paths,
            progress=progress,
            exclude=exclude,
            max_file_bytes=max_file_bytes,
            within=within,
            ignore_files=ignore_files,
        )

    def reopen(self) -> Index:
        """Another handle on this index, with its options and its loaded model: one handle runs one
        call at a time, so a thread that searches while another ingests needs its own."""
        other = Index(
            self.folder, self._requested, self._device, self._fp32, self._chunking, self._wait, self._index_type
        )
        other._encoder = self._encoder
        other._open_data()
        return other

    @_serialized
    def reindex(
        self,
        paths: Sequence[str | os.PathLike[str]] = (),
        model: str | None = None,
        *,
        chunking: ChunkSettings | None = None,
        progress: bool | None = False,
        exclude: Sequence[str] = (),
        max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
        ignore_files: bool = True,
    ) -> IngestReport:
        """Re-embed every indexed document that still exists, plus ``paths``, with ``model``
        (default: the index's) into a new copy, then switch to it atomically. The old index
        answers queries until the switch; an interrupted reindex resumes when run again."""
        from .ingest import reindex

        return reindex(
            self,
            paths,
            model,
            chunking,
            progress=progress,
            exclude=exclude,
            max_file_bytes=max_file_bytes,
            ignore_files=ignore_files,
        )

    def search(
        self,
        query: str,
        k: int = 10,
        min_score: float | None = None,
        *,
        mode: str = DEFAULT_MODE,
        rrf_k: int = RRF_K,
        where: Where | Mapping[str, Any] | None = None,
        context: int = 0,
    ) -> list[Hit]:
        """The ``k`` passages best matching ``query``, best first.

        ``mode`` is ``dense`` (embedding similarity), ``lexical`` (BM25 over the chunks' terms) or
        ``hybrid`` (both, fused by reciprocal rank fusion with constant ``rrf_k``). ``min_score``
        drops hits scoring below it, in the mode's own score. ``where`` (a ``Where``, or a dict
        of its fields) limits the search to some documents, still returning ``k`` hits while that
        many match. ``context`` widens each hit by that many chunks either side, hits whose
        passages touch in one document merged into one (so fewer than ``k`` may come back).
        """
        return self.search_many([query], k, min_score, mode=mode, rrf_k=rrf_k, where=where, context=context)[0]

    def search_many(
        self,
        queries: list[str],
        k: int = 10,
        min_score: float | None = None,
        *,
        mode: str = DEFAULT_MODE,
        rrf_k: int = RRF_K,
        where: Where | Mapping[str, Any] | None = None,
        context: int = 0,
    ) -> list[list[Hit]]:
        """``search`` for several queries, embedded together. Queries longer than the model's
        limit are truncated for the dense search, with a note."""
        scope = Where.of(where)
        return self.run([Query(q, k, min_score, mode, scope, context, rrf_k) for q in queries])

    @_serialized
    def run(self, queries: Sequence[Query], *, base: str | os.PathLike[str] | None = None) -> list[list[Hit]]:
        """Answer several ``Query``s, each with its own options, embedding them all in one batch.
        Relative path filters are taken relative to ``base`` (default: the working directory)."""
        self._follow()
        store, _ = self._require()  # no index yet: say so, rather than find nothing
        dense_texts = list(dict.fromkeys(q.text for q in queries if q.dense))
        if dense_texts:
            self._note_long_queries(dense_texts)
            vectors = dict(zip(dense_texts, self.encoder.encode(dense_texts), strict=True))
        folder = os.fspath(base if base is not None else os.getcwd())
        with guard(store.path), store.snapshot():
            hits = search.answer(store, self._current_vectors, queries, vectors if dense_texts else {}, folder)
            for where in dict.fromkeys(
                q.where for q, found in zip(queries, hits, strict=True) if q.where and not found
            ):
                if (why := search.unmatched(store, where, folder)) and why not in self.notes:
                    self.notes.append(why)
        if dense_texts:
            self._save_vectors()
        return hits

    def _note_long_queries(self, queries: list[str]) -> None:
        limit = self.encoder.max_text_tokens - len(self.encoder.token_spans([self.encoder.prompt])[0])
        for number, spans in enumerate(self.encoder.token_spans(queries), 1):
            if len(spans) > limit:
                which = f"Query {number}" if len(queries) > 1 else "The query"
                self.notes.append(
                    f"{which} is {len(spans)} tokens; the model reads only the first {limit}, the rest is ignored"
                )

    @_serialized
    def remove(self, paths: list[str | os.PathLike[str]]) -> RemoveReport:
        """Take the documents at ``paths`` (files, or everything under folders) out of the index."""
        with self._lock():
            store, _ = self._require()
            with guard(store.path):
                documents = store.documents()
                matched: list[str] = []
                for given in paths:
                    target = os.path.abspath(given)
                    hits = [p for p in documents if is_within(p, target)]
                    if not hits:
                        raise SourceNotFoundError(f"Nothing indexed at {given}")
                    matched.extend(h for h in hits if h not in matched)
                chunks = self._delete(matched)
                self._save_vectors()
        return RemoveReport(files_removed=len(matched), chunks_removed=chunks, paths=matched)

    def _delete(self, paths: list[str]) -> int:
        """Delete documents from the database, then from the vector index. Hold the lock."""
        store, _ = self._require()
        vectors = self._current_vectors()
        if not paths:
            return 0
        ids = store.chunk_ids_of(paths)
        with store.transaction():
            store.delete_documents(paths)
        vectors.remove(np.array(ids, dtype=np.int64))
        self._synced, self._unsaved = store.state(), True
        return len(ids)

    @_serialized
    def check(self) -> list[Check]:
        """Verify the index's invariants: SQLite sound, every chunk with exactly one vector in
        SQLite and in FAISS and the reverse, the FAISS file current, no orphan documents.
        Waits for (or refuses during) a write, as ``wait`` says."""
        with self._lock():
            store, manifest = self._require()
            with guard(store.path):
                return checks(store, self.data, manifest.model.dimension)

    @_serialized
    def repair(self) -> list[Check]:
        """Rebuild the vector index from the vectors stored in SQLite, bring the lexical index in
        step with the chunks, then ``check``."""
        with self._lock():
            store, manifest = self._require()
            with guard(store.path):
                dimension, count = manifest.model.dimension, len(store.chunk_ids())
                kind = choose(self._index_type or manifest.index_type, count, dimension, gpu_available())
                self._vectors = rebuild(store, dimension, kind)
                self._synced, self._unsaved = store.state(), True
                self._save_vectors()
                store.repair_lexical()
            return self.check()

    @_serialized
    def info(self) -> IndexInfo:
        """What the index holds and how it is stored."""
        self._follow()
        store, manifest = self._require()
        with guard(store.path), store.snapshot():
            counts = store.counts()
            vectors = self._current_vectors()
        self._save_vectors()
        model = manifest.model
        size = sum(f.stat().st_size for f in self.data.iterdir() if f.is_file())
        return IndexInfo(
            path=str(self.folder.resolve()),
            model=model.model,
            revision=model.revision,
            dimension=model.dimension,
            pooling=model.pooling,
            normalize=model.normalize,
            max_seq_length=model.max_seq_length,
            chunk_tokens=manifest.chunking.chunk_tokens,
            overlap_tokens=manifest.chunking.overlap_tokens,
            documents=counts["documents"],
            chunks=counts["chunks"],
            index_type=vectors.describe(),
            index_device=vectors.device,
            size_bytes=size,
            semsearch_version=manifest.semsearch_version,
        )


def _same_pipeline(encoder: Encoder, manifest: Manifest) -> bool:
    built = manifest.model
    return (encoder.info.fingerprint, encoder.dimension) == (built.fingerprint, built.dimension)
