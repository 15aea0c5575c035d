"""Moving an index to another backend (a local folder into Milvus, or back) with the vectors it
stores: nothing is re-embedded. Documents go over whole, a few hundred chunks per commit, so a
stop loses at most one commit and a rerun copies only what the target still lacks (by content
hash); documents the source no longer has are removed from the target at the end."""

from __future__ import annotations

import os
import time
from dataclasses import replace

from tqdm import tqdm

from ..config import tqdm_disable
from ..errors import IndexNotFoundError, ModelMismatchError, SameIndexError
from ..results import MigrateReport
from ..storage.locations import identity
from .backend import Backend, Published
from .batch import FLUSH_CHUNKS
from .manifest import same_pipeline_info


def migrate(source: Backend, target: Backend, progress: bool | None = False) -> MigrateReport:
    """Copy ``source`` into ``target`` (created with the source's manifest when new)."""
    started = time.perf_counter()
    source.follow()
    if source.manifest is None:
        raise IndexNotFoundError(f"No index at {source.location} to migrate")
    manifest = source.manifest
    report = MigrateReport(source=source.location, target=target.location)
    with target.lock():
        if target.manifest is None:
            wanted = target.options.index_type
            target.manifest = replace(manifest, index_type=wanted) if wanted else manifest
            target.create()
        elif not same_pipeline_info(target.manifest, manifest):
            raise ModelMismatchError(
                f"{target.location} was built with model '{target.manifest.model.model}' "
                f"({target.manifest.model.dimension}-d, {target.manifest.chunking}); {source.location} with "
                f"'{manifest.model.model}' ({manifest.model.dimension}-d, {manifest.chunking}); "
                "migrate into a new index"
            )
        wanted_documents = source.documents()
        present = target.documents()
        todo = sorted(p for p, d in wanted_documents.items() if p not in present or present[p] != d)
        report.documents_present = len(wanted_documents) - len(todo)
        with tqdm(total=len(todo), unit="doc", desc="migrate", disable=tqdm_disable(progress)) as bar:
            batch: list[Published] = []
            for item in source.export(todo):
                batch.append(item)
                if sum(len(b.chunks) for b in batch) >= FLUSH_CHUNKS:
                    _commit(target, batch, report, bar)
            _commit(target, batch, report, bar)
        gone = [p for p in present if p not in wanted_documents]
        target.delete(gone)
        report.documents_removed = len(gone)
        target.save()
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def check_distinct(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """SameIndexError when ``source`` and ``target`` name one index: a migration onto itself
    would copy nothing and say it succeeded."""
    if identity(source) == identity(target):
        same = "" if str(source) == str(target) else f" ({target} is {source})"
        raise SameIndexError(
            f"Cannot migrate {source} into itself{same}; give a target that is another folder or Milvus location"
        )


def _commit(target: Backend, batch: list[Published], report: MigrateReport, bar: tqdm) -> None:
    if not batch:
        return
    target.commit([replace(b, reused=True) for b in batch], [])
    report.documents_copied += len(batch)
    report.chunks_copied += sum(len(b.chunks) for b in batch)
    bar.update(len(batch))
    batch.clear()
