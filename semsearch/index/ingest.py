"""Ingest and reindex: walk the sources, prepare each file, embed new chunks in batches, commit.

Work is committed every ``FLUSH_CHUNKS`` embedded chunks, in one SQLite transaction: the files
whose every chunk is embedded are published (documents, chunks and vectors together, then added
to the in-memory vector index), and the embedded part of a file not yet finished is staged,
keyed by its content hash and chunk position. A reader sees each file whole, old or new; a stop
or a crash loses at most one batch, and the next run takes a large file up where it stopped.
The vector file is saved at the end, or at a stop. A file whose content is already indexed under
another path (renamed or copied) takes its chunks and vectors from there instead of being
embedded. The model is loaded only when something needs embedding. Ctrl-C asks for a stop at the
next encoder batch.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import DEFAULT_MAX_FILE_BYTES, ChunkSettings, tqdm_disable
from ..documents.chunking import Chunk
from ..documents.formats import SUFFIXES
from ..documents.prepare import Loaded, Prepared, Unchanged, cut, read
from ..documents.reading import is_within
from ..documents.walk import Walk, walk
from ..errors import DiskFullError, Interrupted, NothingToIngestError
from ..results import REFUSED, IngestReport, Skipped
from ..storage.layout import DATABASE, build_folder, discard, pending_builds, publish
from ..storage.store import Store, guard

if TYPE_CHECKING:
    from ..embedding.encoder import Encoder
    from ..storage.vectors import VectorIndex
    from .handle import Index

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
    ignore_files: bool = True,
) -> IngestReport:
    """See ``Index.ingest``."""
    started = time.perf_counter()
    found = walk(
        [Path(p) for p in paths],
        exclude=[index.folder],
        patterns=exclude,
        within=[Path(w) for w in within],
        ignore_files=ignore_files,
    )
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
            raise Interrupted(_stopped(report), report) from None
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _stopped(report: IngestReport) -> str:
    done = report.files_added + report.files_updated
    staged = f", {report.chunks_staged} of them in files not finished yet" if report.chunks_staged else ""
    return (
        f"{report.chunks_embedded} chunks embedded and committed{staged} ({done} files complete); "
        "run the same command again to finish: it goes on from there"
    )


def _run(
    index: Index,
    found: Walk,
    report: IngestReport,
    progress: bool | None,
    stop: Callable[[], bool],
    max_bytes: int | None,
) -> None:
    store = index._writable_store()
    known = store.documents(found.folders)
    given = {str(f) for f in found.files}
    known.update({p: d for p, d in store.documents().items() if p in given})
    settings = index.manifest.chunking if index.manifest else ChunkSettings()
    model = _Model(index)

    def prepared(path: Path) -> Prepared | Unchanged | Skipped:
        item = read(path, known.get(str(path)), max_bytes, found.within)
        if not isinstance(item, Loaded):
            return item
        encoder = model.get()  # something changed: now the model is needed
        chunks = cut(item, encoder.token_spans, settings, encoder.max_text_tokens, encoder.token_counts)
        if isinstance(chunks, Prepared):  # tokenized for the model here too, off the encoder's path
            return replace(chunks, inputs=encoder.tokenize([c.text for c in chunks.chunks]))
        return chunks

    def committed() -> None:
        index._synced, index._unsaved = store.state(), True

    kept: set[str] = set()
    with _Progress(found.files, known, progress) as bar, _ReadAhead(prepared, found.files, stop) as items:
        batch = _Batch(store, index._current_vectors(), model, report, stop, bar, committed)
        for path, item in items:
            if isinstance(item, Skipped):
                report.skipped.append(item)
                bar.read(path, 0, done=True)
                continue
            kept.add(str(path))
            if isinstance(item, Unchanged):
                report.files_unchanged += 1
                bar.read(path, 0, done=True)
            else:
                bar.read(path, batch.add(item), done=False)
                batch.flush()
        batch.flush(final=True)
    stale = [p for p in known if p not in kept and not _kept_despite_skip(p, report.skipped)]
    index._delete(stale)
    report.files_removed = len(stale)
    # still there, but no longer walked: left out by an exclude pattern or an ignore file now
    report.files_removed_excluded = sum(1 for p in stale if os.path.lexists(p))
    _clean_staged(store, found, report.skipped)
    index._save_vectors()
    report.chunks_total = store.counts()["chunks"]


def _kept_despite_skip(path: str, skipped: list[Skipped]) -> bool:
    """A file that still exists but could not be read this time (or lies in a folder that could
    not be read) keeps its indexed copy: a passing problem must not delete anything. One now
    refused (it leads outside the folders that may be read) keeps nothing."""
    if not os.path.lexists(path) or any(is_within(path, s.path) for s in skipped if s.kind == REFUSED):
        return False
    return any(is_within(path, s.path) for s in skipped)


def _clean_staged(store: Store, found: Walk, skipped: list[Skipped]) -> None:
    """Drop staged chunks no file needs any more: after a whole run every file it walked is
    published, so what is still staged under those paths (or under paths gone from disk) is of
    content that has since changed. A file skipped this time keeps its staged work."""
    given = {str(f) for f in found.files}
    passed = {s.path for s in skipped}
    stale: set[str] = set()
    for path, hashes in store.staged_files().items():
        walked = path in given or any(is_within(path, str(folder)) for folder in found.folders)
        if (walked or not os.path.lexists(path)) and path not in passed:
            stale |= hashes
    if stale:
        with store.db.atomic():
            store.unstage(sorted(stale))


class _Model:
    """The index's encoder, loaded on first use by whichever thread needs it first: an ingest
    with nothing to embed never imports torch."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self.lock = threading.Lock()

    def get(self) -> Encoder:
        with self.lock:
            return self.index._load_encoder()


class _Progress:
    """The ingest's progress bar: chunks embedded against the chunks to embed, with the rate, the
    time left and the files done beside it.

    The chunks of files read so far are known exactly; the rest are estimated from the bytes of
    the files still to read that may have changed (size or mtime differs from the indexed copy),
    at the chunks per byte seen so far, so the time left means something from the first file on.
    """

    def __init__(self, files: list[Path], known: dict[str, dict[str, Any]], progress: bool | None) -> None:
        from tqdm.auto import tqdm

        disable = tqdm_disable(progress)
        self.bar = tqdm(total=0, desc="Embedding", unit="chunk", disable=disable, dynamic_ncols=True)
        self.files = len(files)
        self.done = 0
        self.queued = 0  # chunks to embed of the files read so far
        self.bytes_read = 0
        self.sizes = {} if self.bar.disable else _changed_sizes(files, known)
        self.bytes_left = sum(self.sizes.values())
        self._show()

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def read(self, path: Path, chunks: int, done: bool) -> None:
        """A file came out of reading with ``chunks`` to embed (``done``: nothing more to do)."""
        size = self.sizes.pop(str(path), 0)
        self.bytes_left -= size
        self.bytes_read += size
        self.queued += chunks
        self.done += done
        self._show()

    def embedded(self, chunks: int, files: int) -> None:
        """``chunks`` more were embedded and ``files`` more published."""
        self.done += files
        self.bar.update(chunks)
        self._show()

    def _show(self) -> None:
        if self.bar.disable:
            return
        rate = self.queued / self.bytes_read if self.bytes_read else 0.0
        self.bar.total = max(self.bar.n, self.queued + round(rate * self.bytes_left))
        self.bar.set_postfix_str(f"files {self.done}/{self.files}", refresh=False)
        self.bar.refresh()


def _changed_sizes(files: list[Path], known: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Sizes of the files whose size or mtime differ from their indexed copy (or that have none)."""
    sizes: dict[str, int] = {}
    for path in files:
        try:
            info = path.stat()
        except OSError:
            continue
        row = known.get(str(path))
        if row is None or (row["size"], row["mtime"]) != (info.st_size, info.st_mtime):
            sizes[str(path)] = info.st_size
    return sizes


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


@dataclass
class _File:
    """A file queued to be published: its chunks' vectors so far, and what is still to embed."""

    item: Prepared
    vectors: np.ndarray  # (chunks, dimension); the rows of ``missing`` are not filled yet
    missing: list[int]  # positions of the chunks still to embed, in order
    reused: bool = False  # chunks and vectors taken from an indexed copy of the same content
    staged: int = 0  # chunks this run embedded and staged, not yet published


class _Batch:
    """Files waiting to be embedded and published, and the commits that keep the work."""

    def __init__(
        self,
        store: Store,
        vectors: VectorIndex,
        model: _Model,
        report: IngestReport,
        stop: Callable[[], bool],
        progress: _Progress,
        committed: Callable[[], None],
    ) -> None:
        self.store, self.vectors, self.model, self.report, self.stop = store, vectors, model, report, stop
        self.progress, self.committed = progress, committed
        self.files: deque[_File] = deque()
        self.to_embed = 0  # chunks of the queued files still to embed
        self.ready = 0  # chunks of queued files with nothing left to embed

    def add(self, item: Prepared) -> int:
        """Queue a file; returns how many of its chunks it needs embedded (none when its
        content is indexed elsewhere, fewer when an earlier run staged some)."""
        dimension = self.vectors.dimension
        content = item.document["content_hash"]
        # read an indexed copy's vectors now, before this batch replaces any document
        copy = self.store.find_content(content, dimension)
        if copy is not None:
            rows, matrix = copy
            chunks = [Chunk(**{key: r[key] for key in _CHUNK_FIELDS}) for r in rows]
            self.files.append(_File(Prepared(item.document, chunks, item.is_update), matrix, [], reused=True))
            self.ready += len(chunks)
            return 0
        matrix = np.zeros((len(item.chunks), dimension), dtype=np.float32)
        staged = self.store.staged(content, dimension)
        missing = []
        for seq, chunk in enumerate(item.chunks):
            found = staged.get(seq)
            if found is not None and found[:2] == (chunk.start, chunk.end):
                matrix[seq] = found[2]
            else:
                missing.append(seq)
        self.report.chunks_resumed += len(item.chunks) - len(missing)
        self.files.append(_File(item, matrix, missing))
        self.to_embed += len(missing)
        self.ready += 0 if missing else len(item.chunks)
        return len(missing)

    def flush(self, final: bool = False) -> None:
        """Embed and commit ``FLUSH_CHUNKS`` chunks at a time while that many wait or that many
        are ready to publish; ``final``: until nothing is left."""
        while self.files and (final or self.to_embed >= FLUSH_CHUNKS or self.ready >= FLUSH_CHUNKS):
            self._commit(self._embed_next())

    def _embed_next(self) -> list[tuple[_File, list[int]]]:
        """Embed the next ``FLUSH_CHUNKS`` chunks still to embed, in queue order, into their files."""
        taken: list[tuple[_File, list[int]]] = []
        room = FLUSH_CHUNKS
        for file in self.files:
            if room == 0:
                break
            if file.missing:
                taken.append((file, file.missing[:room]))
                room -= len(taken[-1][1])
        if not taken:
            return taken
        encoder = self.model.get()
        inputs: list[Any] = []
        for file, part in taken:
            tokenized = file.item.inputs or encoder.tokenize([c.text for c in file.item.chunks])
            inputs.extend(tokenized[seq] for seq in part)
        embedded = encoder.encode_tokenized(inputs, stop=self.stop)
        at = 0
        for file, part in taken:
            file.vectors[part] = embedded[at : at + len(part)]
            at += len(part)
            del file.missing[: len(part)]
            self.ready += 0 if file.missing else len(file.item.chunks)
        self.to_embed -= len(inputs)
        return taken

    def _commit(self, taken: list[tuple[_File, list[int]]]) -> None:
        """One transaction: publish every queued file with nothing left to embed, and stage the
        chunks just embedded of files that still miss some."""
        done = [file for file in self.files if not file.missing]
        partial = [(file, part) for file, part in taken if file.missing]
        old = self.store.chunk_ids_of([file.item.document["path"] for file in done])
        added: list[int] = []
        with self.store.transaction() if done else self.store.db.atomic():
            for file in done:
                chunks = [asdict(c) for c in file.item.chunks]
                added.extend(self.store.put_document(file.item.document, chunks, file.vectors))
            self.store.unstage([file.item.document["content_hash"] for file in done if not file.reused])
            for file, part in partial:
                rows = [(seq, file.item.chunks[seq].start, file.item.chunks[seq].end) for seq in part]
                path = file.item.document["path"]
                self.store.stage(file.item.document["content_hash"], path, rows, file.vectors[part])
        if done:
            self.vectors.remove(np.array(old, dtype=np.int64))
            self.vectors.add(np.array(added, dtype=np.int64), np.concatenate([file.vectors for file in done]))
            self.committed()
        self.files = deque(file for file in self.files if file.missing)
        self.ready -= sum(len(file.item.chunks) for file in done)
        embedded = sum(len(part) for _, part in taken)
        for file, part in partial:
            file.staged += len(part)
        report = self.report
        report.chunks_embedded += embedded
        report.chunks_staged += sum(len(part) for _, part in partial) - sum(file.staged for file in done)
        report.files_reused += sum(1 for file in done if file.reused)
        report.files_updated += sum(1 for file in done if file.item.is_update)
        report.files_added += sum(1 for file in done if not file.item.is_update)
        self.progress.embedded(embedded, len(done))


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
    ignore_files: bool = True,
) -> IngestReport:
    """See ``Index.reindex``."""
    from .handle import Index

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
        found = walk(sources, exclude=[index.folder], patterns=exclude, ignore_files=ignore_files)
        try:
            report = _ingest_walked(new, found, time.perf_counter(), progress, max_file_bytes)
            assert new._store is not None
            walked = {str(p) for p in found.files}
            with guard(new._store.path):
                # a resumed rebuild may hold files that are no longer among the sources
                new._delete([p for p in new._store.documents() if p not in walked])
                new._save_vectors()
                report.files_removed = len(set(old_paths) - set(new._store.documents()))
                report.chunks_total = new._store.counts()["chunks"]
        except DiskFullError as exc:  # an unfinished copy only takes the room a rerun would need
            new._release()
            discard(index.folder, build)
            raise DiskFullError(f"{exc}; the unfinished rebuilt copy was deleted to free its space") from None
        publish(index.folder, build)
        old = index.data
        index._release()
        discard(index.folder, old)
        index._adopt(new)
    return report


def _resume_or_start(root: Path, model: str, chunking: ChunkSettings | None) -> Path:
    """An unfinished rebuild with the same model (and chunking, if given) to resume, else a new
    folder; other unfinished rebuilds are deleted."""
    from .handle import same_model

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
