"""Ingest and reindex: walk the sources, prepare each file, embed new chunks in batches, commit.

Each batch is one SQLite transaction (documents, chunks and their vectors together) and then goes
into the in-memory vector index; the vector file is saved at the end, or at a stop. A file whose
content is already indexed under another path (renamed or copied) takes its chunks and vectors
from there instead of being embedded. Ctrl-C asks for a stop at the next encoder batch: batches
committed so far are kept, and running the same command again skips them.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .chunking import Chunk
from .config import DEFAULT_MAX_FILE_BYTES, SUFFIXES, ChunkSettings, tqdm_disable
from .errors import Interrupted, NothingToIngestError
from .layout import DATABASE, build_folder, discard, pending_builds, publish
from .prepare import Prepared, Unchanged, prepare
from .results import IngestReport
from .sources import Skipped, Walk, is_within, walk
from .store import Store, guard

if TYPE_CHECKING:
    from .encoder import Encoder
    from .engine import Index
    from .vectors import VectorIndex

FLUSH_CHUNKS = 256  # chunks embedded and committed together: at most this much work is lost to a crash
AHEAD_CHUNKS = 4 * FLUSH_CHUNKS  # chunks read and cut ahead of the encoder, at most


def ingest(
    index: Index,
    paths: Sequence[str | os.PathLike[str]],
    *,
    progress: bool | None = False,
    exclude: Sequence[str] = (),
    max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
    within: Sequence[str | os.PathLike[str]] = (),
) -> IngestReport:
    """See ``Index.ingest``."""
    started = time.perf_counter()
    found = walk([Path(p) for p in paths], exclude=[index.folder], patterns=exclude, within=[Path(w) for w in within])
    return _ingest_walked(index, found, started, progress, max_file_bytes)


def _ingest_walked(
    index: Index, found: Walk, started: float, progress: bool | None, max_file_bytes: int | None
) -> IngestReport:
    # fail on bad input and options here, before the index folder is created
    if not found.files and not (index._store and index._store.documents(found.folders)):
        where = ", ".join(str(p) for p in found.folders) or "the given files"
        raise NothingToIngestError(f"No files of a type semsearch reads ({' '.join(SUFFIXES)}) to ingest in {where}")
    if index.manifest is None:
        index._plan_manifest()
    with index._lock(), _stop_on_sigint() as stop:
        report = IngestReport(skipped=list(found.skipped))
        try:
            with guard(index.data / DATABASE):
                _run(index, found, report, progress, stop, max_file_bytes)
        except Interrupted:
            index._save_vectors()
            report.seconds = round(time.perf_counter() - started, 3)
            report.chunks_total = index._store.counts()["chunks"] if index._store else 0
            done = report.files_added + report.files_updated
            raise Interrupted(
                f"{done} files ({report.chunks_embedded} chunks) were committed before the stop; "
                "run the same command again to finish",
                report,
            ) from None
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _run(
    index: Index,
    found: Walk,
    report: IngestReport,
    progress: bool | None,
    stop: Callable[[], bool],
    max_bytes: int | None,
) -> None:
    from tqdm.auto import tqdm

    known = index._store.documents(found.folders) if index._store else {}
    store = index._writable_store()
    given = {str(f) for f in found.files}
    known.update({p: d for p, d in store.documents().items() if p in given})
    encoder, settings = index.encoder, index.manifest.chunking if index.manifest else ChunkSettings()
    batch = _Batch(store, index._current_vectors(), encoder, report, stop)
    kept: set[str] = set()

    def prepared(path: Path) -> Prepared | Unchanged | Skipped:
        item = prepare(
            path,
            known.get(str(path)),
            encoder.token_spans,
            settings,
            encoder.max_text_tokens,
            max_bytes=max_bytes,
            token_counts=encoder.token_counts,
        )
        if isinstance(item, Prepared):  # tokenized for the model here too, off the encoder's path
            return replace(item, inputs=encoder.tokenize([c.text for c in item.chunks]))
        return item

    bar = tqdm(total=len(found.files), desc="Ingesting", unit="file", disable=tqdm_disable(progress))
    with bar, _ReadAhead(prepared, found.files, stop) as items:
        for path, item in items:
            bar.update()
            if isinstance(item, Skipped):
                report.skipped.append(item)
                continue
            kept.add(str(path))
            if isinstance(item, Unchanged):
                report.files_unchanged += 1
            elif batch.add(item) >= FLUSH_CHUNKS:
                batch.flush()
                index._synced, index._unsaved = store.generation(), True
                bar.set_postfix(chunks=report.chunks_embedded)
    batch.flush()
    index._synced, index._unsaved = store.generation(), True
    stale = [p for p in known if p not in kept and not _kept_despite_skip(p, report.skipped)]
    index._delete(stale)
    report.files_removed = len(stale)
    index._save_vectors()
    report.chunks_total = store.counts()["chunks"]


def _kept_despite_skip(path: str, skipped: list[Skipped]) -> bool:
    """A file that still exists but could not be read this time (or lies in a folder that could
    not be read) keeps its indexed copy: a passing problem must not delete anything."""
    if not os.path.lexists(path):
        return False
    return any(is_within(path, s.path) for s in skipped)


class _ReadAhead:
    """``work(path)`` for each path, in order, done in a background thread ahead of the consumer,
    so reading and chunking the next files overlaps embedding and committing the last ones.

    At most ``AHEAD_CHUNKS`` prepared chunks (and at least one file) wait at a time. Iterating
    yields (path, result); an exception in the thread is raised there. When ``stop`` answers True
    iteration raises Interrupted; leaving the ``with`` block tells the thread to finish.
    """

    def __init__(
        self, work: Callable[[Path], Prepared | Unchanged | Skipped], paths: list[Path], stop: Callable[[], bool]
    ) -> None:
        self.work, self.paths, self.stop = work, paths, stop
        self.ready: deque[tuple[Path, Prepared | Unchanged | Skipped] | BaseException] = deque()
        self.waiting = 0  # chunks in self.ready
        self.changed = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._produce, name="semsearch-read-ahead", daemon=True)

    def __enter__(self) -> Iterator[tuple[Path, Prepared | Unchanged | Skipped]]:
        self.thread.start()
        return self._consume()

    def __exit__(self, *exc: object) -> None:
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def _produce(self) -> None:
        for path in self.paths:
            try:
                result: tuple[Path, Prepared | Unchanged | Skipped] | BaseException = (path, self.work(path))
            except BaseException as exc:  # handed to the consumer, which raises it
                result = exc
            size = len(result[1].chunks) if isinstance(result, tuple) and isinstance(result[1], Prepared) else 0
            with self.changed:
                while not self.closed and self.ready and self.waiting + size > AHEAD_CHUNKS:
                    self.changed.wait()
                if self.closed:
                    return
                self.ready.append(result)
                self.waiting += size
                self.changed.notify_all()
            if isinstance(result, BaseException) or self.stop():
                return

    def _consume(self) -> Iterator[tuple[Path, Prepared | Unchanged | Skipped]]:
        for _ in self.paths:
            with self.changed:
                while not self.ready and not self.stop():
                    self.changed.wait(timeout=0.1)
                if self.stop():
                    raise Interrupted("stopped")
                result = self.ready.popleft()
                if isinstance(result, tuple) and isinstance(result[1], Prepared):
                    self.waiting -= len(result[1].chunks)
                self.changed.notify_all()
            if isinstance(result, BaseException):
                raise result
            yield result


_CHUNK_FIELDS = ("text", "start", "end", "line", "tokens", "page", "heading")


class _Batch:
    """Prepared files waiting to be embedded and committed together."""

    def __init__(
        self, store: Store, vectors: VectorIndex, encoder: Encoder, report: IngestReport, stop: Callable[[], bool]
    ) -> None:
        self.store, self.vectors, self.encoder, self.report, self.stop = store, vectors, encoder, report, stop
        self.items: list[tuple[Prepared, np.ndarray | None]] = []
        self.to_embed = 0

    def add(self, item: Prepared) -> int:
        """Queue a file; returns how many chunks wait to be embedded."""
        # read an indexed copy's vectors now, before this batch replaces any document
        copy = self.store.find_content(item.document["content_hash"], self.vectors.dimension)
        if copy is None:
            self.items.append((item, None))
            self.to_embed += len(item.chunks)
        else:
            rows, matrix = copy
            chunks = [Chunk(**{key: r[key] for key in _CHUNK_FIELDS}) for r in rows]
            self.items.append((Prepared(item.document, chunks, item.is_update), matrix))
        return self.to_embed

    def flush(self) -> None:
        """Embed, then commit documents, chunks and vectors in one transaction, then add to FAISS."""
        if not self.items:
            return
        to_embed = [item for item, matrix in self.items if matrix is None]
        inputs = [e for item in to_embed for e in item.inputs or self.encoder.tokenize([c.text for c in item.chunks])]
        embedded = iter(self.encoder.encode_tokenized(inputs, stop=self.stop) if inputs else [])
        blocks = [matrix if matrix is not None else _take(embedded, len(item.chunks)) for item, matrix in self.items]
        old = self.store.chunk_ids_of([item.document["path"] for item, _ in self.items])
        added: list[int] = []
        with self.store.transaction():
            for (item, _), block in zip(self.items, blocks, strict=True):
                added.extend(self.store.put_document(item.document, [asdict(c) for c in item.chunks], block))
        self.vectors.remove(np.array(old, dtype=np.int64))
        self.vectors.add(np.array(added, dtype=np.int64), np.concatenate(blocks))
        report = self.report
        report.chunks_embedded += len(inputs)
        report.files_reused += sum(1 for _, matrix in self.items if matrix is not None)
        report.files_updated += sum(1 for item, _ in self.items if item.is_update)
        report.files_added += sum(1 for item, _ in self.items if not item.is_update)
        self.items, self.to_embed = [], 0


def _take(rows: Iterator[np.ndarray], count: int) -> np.ndarray:
    return np.stack([next(rows) for _ in range(count)])


@contextmanager
def _stop_on_sigint() -> Iterator[Callable[[], bool]]:
    """Turn the first Ctrl-C into a stop request that the ingest checks between batches; a
    second Ctrl-C interrupts at once. Only where Python's default SIGINT handler is in place."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield requested.is_set
        return

    def handler(signum: int, frame: object) -> None:
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()

    signal.signal(signal.SIGINT, handler)
    try:
        yield requested.is_set
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def reindex(
    index: Index,
    paths: Sequence[str | os.PathLike[str]],
    model: str | None,
    chunking: ChunkSettings | None,
    *,
    progress: bool | None = False,
    exclude: Sequence[str] = (),
    max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
) -> IngestReport:
    """See ``Index.reindex``."""
    from .engine import Index

    with index._lock():
        old_paths = list(index._store.documents()) if index._store else []
        model = model or index._model
        build = _resume_or_start(index.folder, model, chunking)
        kind = index._index_type or (index.manifest.index_type if index.manifest else None)
        new = Index(index.folder, model, index._device, index._fp32, None, False, kind)
        new.data, new._locked = build, True
        if (build / DATABASE).exists():
            new._store = Store.open(build)
            new.manifest = new._read_manifest(new._store)
        if new.manifest is None:
            base = chunking or (index.manifest.chunking if index.manifest else ChunkSettings())
            limit = new.encoder.max_text_tokens
            new._chunking = ChunkSettings(min(base.chunk_tokens, limit), min(base.overlap_tokens, limit // 2))
        sources = [Path(p) for p in [*paths, *(p for p in old_paths if os.path.exists(p))]]
        found = walk(sources, exclude=[index.folder], patterns=exclude)
        report = _ingest_walked(new, found, time.perf_counter(), progress, max_file_bytes)
        assert new._store is not None
        walked = {str(p) for p in found.files}
        with guard(new._store.path):
            # a resumed rebuild may hold files that are no longer among the sources
            new._delete([p for p in new._store.documents() if p not in walked])
            new._save_vectors()
            report.files_removed = len(set(old_paths) - set(new._store.documents()))
            report.chunks_total = new._store.counts()["chunks"]
        publish(index.folder, build)
        old = index.data
        index._release()
        discard(index.folder, old)
        index._adopt(new)
    return report


def _resume_or_start(root: Path, model: str, chunking: ChunkSettings | None) -> Path:
    """An unfinished rebuild with the same model (and chunking, if given) to resume, else a new
    folder; other unfinished rebuilds are deleted."""
    from .engine import same_model

    chosen: Path | None = None
    for folder in pending_builds(root):
        try:
            store = Store.open(folder)
            manifest = store.manifest()
            store.close()
        except Exception:  # a damaged leftover, whatever the damage, is simply started over
            manifest = None
        resumable = manifest is not None and same_model(model, manifest) and chunking in (None, manifest.chunking)
        if chosen is None and resumable:
            chosen = folder
        else:
            discard(root, folder)
    return chosen or build_folder(root)
