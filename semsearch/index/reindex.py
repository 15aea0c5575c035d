"""Re-embedding a whole index into a new copy beside it, then switching to it atomically, on any
backend: the backend makes the copy (``rebuild``), and publishes or discards it."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..config import DEFAULT_MAX_FILE_BYTES, ChunkSettings
from ..documents.walk import Walk, walk
from ..errors import DiskFullError, NothingToIngestError
from ..results import IngestReport
from .backend import Backend
from .ingest import ingest_walked


def reindex(
    handle: Backend,
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
    with handle.lock():
        old_paths = list(handle.documents())
        model = model or handle.model
        structure = handle.options.index_type or (handle.manifest.index_type if handle.manifest else None)
        options = replace(handle.options, model=model, chunking=None, wait=False, index_type=structure)
        sources = [Path(p) for p in [*paths, *(p for p in old_paths if os.path.exists(p))]]
        found = walk(sources, exclude=handle.own_paths(), patterns=exclude, ignore_files=ignore_files)
        if not found.files:  # before a copy is begun: the index stays as it is
            given = ", and the paths given hold no file of a type semsearch reads" if paths else ""
            raise NothingToIngestError(f"Nothing to reindex: none of the indexed files is there any more{given}")
        new = handle.rebuild(options, chunking)
        try:
            report = _fill(handle, new, found, old_paths, chunking, progress, max_file_bytes)
        except DiskFullError as exc:  # an unfinished copy only takes the room a rerun would need
            handle.discard(new)
            raise DiskFullError(f"{exc}; the unfinished rebuilt copy was deleted to free its space") from None
        except BaseException:  # kept for a rerun to resume; its connections let go of
            new.release()
            raise
        handle.switch_to(new)
    return report


def _fill(
    handle: Backend,
    new: Backend,
    found: Walk,
    old_paths: list[str],
    chunking: ChunkSettings | None,
    progress: bool | None,
    max_file_bytes: int | None,
) -> IngestReport:
    """Ingest what the walk found into the new copy, which then holds nothing else."""
    if new.manifest is None:
        # a new index (none yet, or a kill before its first commit) takes the chunking it was opened with
        base = chunking or (handle.manifest.chunking if handle.manifest else handle.options.chunking) or ChunkSettings()
        limit = new.encoder().max_text_tokens
        fitted = ChunkSettings(min(base.chunk_tokens, limit), min(base.overlap_tokens, limit // 2))
        new.options = replace(new.options, chunking=fitted)
    report = ingest_walked(new, found, time.perf_counter(), progress, max_file_bytes)
    walked = {str(p) for p in found.files}
    # a resumed rebuild may hold files that are no longer among the sources
    new.delete([p for p in new.documents() if p not in walked])
    new.save()
    report.files_removed = len(set(old_paths) - set(new.documents()))
    report.chunks_total = new.chunk_count()
    return report
