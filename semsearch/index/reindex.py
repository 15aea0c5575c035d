"""Re-embedding a whole index into a new copy beside it, then switching to it atomically."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..config import DEFAULT_MAX_FILE_BYTES, ChunkSettings
from ..documents.walk import walk
from ..errors import DiskFullError
from ..results import IngestReport
from ..storage.layout import build_folder, discard, pending_builds, publish
from ..storage.store import Store
from .handle import Handle
from .ingest import ingest_walked
from .manifest import same_model


def reindex(
    handle: Handle,
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
        old_paths = list(handle.store.documents()) if handle.store else []
        model = model or handle.model
        build = _resume_or_start(handle.root, model, chunking)
        structure = handle.options.index_type or (handle.manifest.index_type if handle.manifest else None)
        new = Handle(handle.root, replace(handle.options, model=model, chunking=None, wait=False, index_type=structure))
        new.build_in(build)
        if new.manifest is None:
            base = chunking or (handle.manifest.chunking if handle.manifest else ChunkSettings())
            limit = new.encoder().max_text_tokens
            fitted = ChunkSettings(min(base.chunk_tokens, limit), min(base.overlap_tokens, limit // 2))
            new.options = replace(new.options, chunking=fitted)
        sources = [Path(p) for p in [*paths, *(p for p in old_paths if os.path.exists(p))]]
        found = walk(sources, exclude=[handle.root], patterns=exclude, ignore_files=ignore_files)
        try:
            report = ingest_walked(new, found, time.perf_counter(), progress, max_file_bytes)
            store, _ = new.require()
            walked = {str(p) for p in found.files}
            # a resumed rebuild may hold files that are no longer among the sources
            new.delete([p for p in store.documents() if p not in walked])
            new.save_vectors()
            report.files_removed = len(set(old_paths) - set(store.documents()))
            report.chunks_total = store.counts()["chunks"]
        except DiskFullError as exc:  # an unfinished copy only takes the room a rerun would need
            new.release()
            discard(handle.root, build)
            raise DiskFullError(f"{exc}; the unfinished rebuilt copy was deleted to free its space") from None
        publish(handle.root, build)
        old = handle.data_folder
        handle.release()
        discard(handle.root, old)
        handle.adopt(new)
    return report


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
        resumable = manifest is not None and same_model(model, manifest) and chunking in (None, manifest.chunking)
        if chosen is None and resumable:
            chosen = folder
        else:
            discard(root, folder)
    return chosen or build_folder(root)
