"""Keeping an index in step with folders that change: file events (watchfiles) debounced into
rounds, each one ingest of the watched paths.

A round re-ingests the watched paths as a whole, not only the files the events name, so it
follows every rule an ingest follows, with no second copy of them: ignore files and exclude
patterns (anchored at the folders given), renames found by content, files gone, a crash or
Ctrl-C in the middle. What that costs is a walk and a size-and-mtime check of each watched
file, about 0.07 ms a file (docs/benchmarks.md); only what changed is read and embedded.

Events are kept while a round runs, so a change made during one starts the next. Only events
that can matter start a round: files of a type semsearch reads, ignore files and folders, not
in a hidden folder and not the index's own files (its writes would start rounds for ever).

The watcher itself, kept going through what it cannot follow (names that are not UTF-8, watched
paths that vanish), is ``watcher.py``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import DEFAULT_DEBOUNCE_MS as DEBOUNCE_MS
from ..config import DEFAULT_MAX_FILE_BYTES
from ..errors import IndexLockedError, NothingToIngestError, SemsearchError, SourceNotFoundError
from ..results import IngestReport
from .watcher import Burst, WatchStatus, rounds

if TYPE_CHECKING:
    from .facade import Index

# what a round may fail with and the watch go on: the next change tries again
PASSING = (NothingToIngestError, IndexLockedError, SourceNotFoundError)


@dataclass(frozen=True)
class Round:
    """One ingest of a watch: ``changes`` is the number of file events that started it (0 for
    the first, which catches up with everything, and for one after the watcher was started
    again); ``report`` what it did, or ``error`` why it did nothing this time (the watch goes
    on); ``note`` what happened to the watch itself before it (restarted, a watched path gone)."""

    changes: int
    report: IngestReport | None = None
    error: SemsearchError | None = None
    note: str | None = None


def watch(
    index: Index,
    paths: Sequence[str | os.PathLike[str]],
    *,
    debounce_ms: int = DEBOUNCE_MS,
    stop: threading.Event | None = None,
    progress: bool | None = False,
    exclude: Sequence[str] = (),
    max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
    ignore_files: bool = True,
    status: WatchStatus | None = None,
) -> Iterator[Round]:
    """Ingest ``paths`` (files or folders, as ``Index.ingest`` takes them, with its options),
    then again each time files under them change, until ``stop`` is set or Ctrl-C (then the
    iteration ends; Ctrl-C during a round raises ``Interrupted`` as an ingest does). A watched
    path that is gone has its documents removed, and is watched again once back. Raises
    WatchError when the watcher cannot be started again; ``status`` says how the watch is doing."""
    roots = watched(paths)

    def ingest(existing: list[Path]) -> IngestReport:
        return index.ingest(
            existing, progress=progress, exclude=exclude, max_file_bytes=max_file_bytes, ignore_files=ignore_files
        )

    own = index.handle.own_paths()
    for burst in rounds(roots, own=own, debounce_ms=debounce_ms, stop=stop, status=status):
        yield one_round(burst, roots, ingest, lambda gone: index.remove(gone, missing_ok=True).files_removed)


def watched(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """``paths`` as absolute paths; SourceNotFoundError for any that does not exist."""
    roots = [Path(os.path.abspath(p)) for p in paths]
    missing = [str(r) for r in roots if not r.exists()]
    if not roots or missing:
        raise SourceNotFoundError(f"Nothing to watch at {', '.join(missing)}" if missing else "Nothing to watch")
    return roots


def one_round(
    burst: Burst, roots: list[Path], ingest: Callable[[list[Path]], IngestReport], remove: Callable[[list[Path]], int]
) -> Round:
    """Ingest the watched ``roots`` that exist and ``remove`` the documents of those gone."""
    existing = [r for r in roots if r.exists()]
    try:
        report = ingest(existing) if existing else IngestReport()
        gone = [r for r in roots if r not in existing]
        if gone:
            report.files_removed += remove(gone)
    except PASSING as exc:
        return Round(burst.changes, error=exc, note=burst.note)
    return Round(burst.changes, report, note=burst.note)
