"""Ingest: walk the sources, read and cut each file, embed new chunks in batches, commit.

Work is committed every ``FLUSH_CHUNKS`` embedded chunks, in one SQLite transaction
(``batch.py``): the files whose every chunk is embedded are published (documents, chunks and
vectors together, then added to the in-memory vector index), and the embedded part of a file not
yet finished is staged, keyed by its content hash and chunk position. A reader sees each file
whole, old or new; a stop or a crash loses at most one batch, and the next run takes a large file
up where it stopped. The vector file is saved at the end, or at a stop. A file whose content is
already indexed under another path (renamed or copied) takes its chunks and vectors from there.
The model is loaded only when something needs embedding. Ctrl-C asks for a stop at the next
encoder batch.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import DEFAULT_MAX_FILE_BYTES
from ..documents.formats import SUFFIXES
from ..documents.prepare import Loaded, Prepared, Unchanged, cut, read
from ..documents.reading import is_within
from ..documents.sharding import Shard
from ..documents.walk import Walk, walk
from ..errors import Interrupted, NothingToIngestError
from ..results import EMPTY, REFUSED, IngestReport, Skipped
from .backend import Backend
from .batch import Batch
from .progress import Progress
from .readahead import ReadAhead

if TYPE_CHECKING:
    from ..embedding.encoder import Encoder

__all__ = ["ingest", "ingest_walked"]


def ingest(
    handle: Backend,
    paths: Sequence[str | os.PathLike[str]],
    *,
    progress: bool | None = False,
    exclude: Sequence[str] = (),
    max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
    within: Sequence[str | os.PathLike[str]] = (),
    ignore_files: bool = True,
    shard: Shard | str | tuple[int, int] | None = None,
) -> IngestReport:
    """See ``Index.ingest``."""
    started = time.perf_counter()
    found = walk(
        [Path(p) for p in paths],
        exclude=handle.own_paths(),
        patterns=exclude,
        within=[Path(w) for w in within],
        ignore_files=ignore_files,
    )
    return ingest_walked(handle, found, started, progress, max_file_bytes, Shard.of(shard))


def ingest_walked(
    handle: Backend,
    found: Walk,
    started: float,
    progress: bool | None,
    max_file_bytes: int | None,
    shard: Shard | None = None,
) -> IngestReport:
    """Ingest what a walk found into the index of ``handle`` (with ``shard``, only its share)."""
    # fail on bad input and options here, before the index folder is created
    refused = any(s.kind == REFUSED for s in found.skipped)  # said in the report, not an error
    if not found.files and not refused and not handle.documents_in(*found.scope):
        where = ", ".join(str(p) for p in found.folders) or "the given files"
        raise NothingToIngestError(f"No files of a type semsearch reads ({' '.join(SUFFIXES)}) to ingest in {where}")
    if shard is not None:
        found = _share(found, shard)
    loading = time.perf_counter()
    if handle.manifest is None:
        handle.plan_manifest()  # loads the model: a new index's manifest records it
    loading = time.perf_counter() - loading
    with handle.lock(), _stop_on_sigint() as stop:
        report = IngestReport(skipped=list(found.skipped), model_load_seconds=loading)
        _engine(report, handle.loaded_encoder())
        try:
            _run(handle, found, report, progress, stop, max_file_bytes, shard)
        except Interrupted:
            handle.save()
            _timed(report, started)
            report.chunks_total = handle.chunk_count()
            raise Interrupted(_stopped(report), report) from None
    _timed(report, started)
    return report


def _engine(report: IngestReport, encoder: Encoder | None) -> None:
    if encoder is not None:
        report.engine = encoder.choice.describe()
        report.conversion_seconds = round(encoder.conversion_seconds, 3)


def _timed(report: IngestReport, started: float) -> None:
    report.seconds = round(time.perf_counter() - started, 3)
    report.model_load_seconds = round(report.model_load_seconds, 3)
    report.embedding_seconds = round(report.embedding_seconds, 3)


def _stopped(report: IngestReport) -> str:
    done = report.files_added + report.files_updated
    staged = f", {report.chunks_staged} of them in files not finished yet" if report.chunks_staged else ""
    return (
        f"{report.chunks_embedded} chunks embedded and committed{staged} ({done} files complete); "
        "run the same command again to finish: it goes on from there"
    )


def _run(
    handle: Backend,
    found: Walk,
    report: IngestReport,
    progress: bool | None,
    stop: Callable[[], bool],
    max_bytes: int | None,
    shard: Shard | None = None,
) -> None:
    handle.create()
    known = handle.documents_in(*found.scope)  # the only documents this ingest may remove
    if shard is not None:  # the other shares' documents are other workers' business
        known = {path: document for path, document in known.items() if shard.holds(path)}
    manifest = handle.require_manifest()
    model = LazyEncoder(handle, report)

    def prepared(path: Path) -> Prepared | Unchanged | Skipped:
        item = read(path, known.get(str(path)), max_bytes, found.within)
        if not isinstance(item, Loaded):
            return item
        encoder = model.get()  # something changed: now the model is needed
        chunks = cut(item, encoder.token_spans, manifest.chunking, encoder.max_text_tokens, encoder.token_counts)
        if isinstance(chunks, Prepared):  # tokenized for the model here too, off the encoder's path
            return replace(chunks, inputs=encoder.tokenize_documents([c.text for c in chunks.chunks]))
        return chunks

    kept: set[str] = set()
    with Progress(found.files, known, progress) as bar, ReadAhead(bar.showing(prepared), found.files, stop) as items:
        batch = Batch(handle, manifest.model.dimension, model.get, report, stop, bar)
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
    kept -= batch.dropped  # vanished or changed since read: removed if gone (see _gone)
    stale = [p for p in known if p not in kept and _gone(p, found, report.skipped)]
    handle.delete(stale)
    report.files_removed = len(stale)
    # still there, but no longer walked: left out by an exclude pattern or an ignore file now
    report.files_removed_excluded = sum(1 for p in stale if os.path.lexists(p) and not os.path.isdir(p))
    _clean_staged(handle, found, report.skipped, shard)
    handle.save()
    report.chunks_total = handle.chunk_count()


def _gone(path: str, found: Walk, skipped: list[Skipped]) -> bool:
    """Whether the document at ``path`` (in the walk's scope, not found by it) is proven gone:
    its file no longer exists, or the walk left it out (an exclude pattern, an ignore file, a
    link now leading outside the folders that may be read), or it was read and holds no text.
    A file that still exists but could not be read this time (or lies in a folder that could
    not be read) keeps its indexed copy: a passing problem must not delete anything. A path
    outside the folders that may be read is never touched (an ingest a server was asked for
    removes nothing of the operator's)."""
    if found.within and not any(is_within(path, top) for top in found.within):
        return False
    if not os.path.lexists(path) or any(is_within(path, s.path) for s in skipped if s.kind in (REFUSED, EMPTY)):
        return True
    return not any(is_within(path, s.path) for s in skipped)


def _share(found: Walk, shard: Shard) -> Walk:
    """What the walk found that is ``shard``'s: its files, and what was skipped among them (a
    folder that could not be read counts for every share: documents under it are kept)."""
    return replace(
        found,
        files=[f for f in found.files if shard.holds(str(f))],
        skipped=[s for s in found.skipped if shard.holds(s.path) or os.path.isdir(s.path)],
    )


def _clean_staged(handle: Backend, found: Walk, skipped: list[Skipped], shard: Shard | None = None) -> None:
    """Drop staged chunks no file needs any more: after a whole run every file it walked is
    published, so what is still staged under those paths (or under paths gone from disk) is of
    content that has since changed. A file skipped this time keeps its staged work, and so does
    another share's file (its worker may be embedding it)."""
    given = {str(f) for f in found.files}
    passed = {s.path for s in skipped}
    stale: set[str] = set()
    for path, hashes in handle.staged_files().items():
        if shard is not None and not shard.holds(path):
            continue
        walked = path in given or any(is_within(path, str(folder)) for folder in found.folders)
        if (walked or not os.path.lexists(path)) and path not in passed:
            stale |= hashes
    if stale:
        handle.unstage(sorted(stale))


class LazyEncoder:
    """The index's encoder, loaded on first use by whichever thread needs it first: an ingest
    with nothing to embed never imports torch. The time loading took goes in the report."""

    def __init__(self, handle: Backend, report: IngestReport) -> None:
        self.handle, self.report = handle, report
        self.lock = threading.Lock()
        self.loaded: Encoder | None = None

    def get(self) -> Encoder:
        with self.lock:
            if self.loaded is None:
                started = time.perf_counter()
                self.loaded = self.handle.encoder()
                self.report.model_load_seconds += time.perf_counter() - started
                _engine(self.report, self.loaded)
            return self.loaded


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
