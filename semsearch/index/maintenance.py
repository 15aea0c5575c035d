"""Looking after an index: what it holds, checking its invariants, repairing the vector side
from SQLite, and taking documents out."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..documents.reading import is_within
from ..errors import SourceNotFoundError
from ..results import Check, IndexInfo, RemoveReport
from ..storage.consistency import checks
from ..storage.vectors import choose, gpu_available
from .handle import Handle


def remove(handle: Handle, paths: Sequence[str | os.PathLike[str]]) -> RemoveReport:
    """Take the documents at ``paths`` (files, or everything under folders) out of the index."""
    with handle.lock():
        store, _ = handle.require()
        documents = store.documents()
        matched: list[str] = []
        for given in paths:
            target = os.path.abspath(given)
            found = [p for p in documents if is_within(p, target)]
            if not found:
                raise SourceNotFoundError(f"Nothing indexed at {given}")
            matched.extend(p for p in found if p not in matched)
        chunks = handle.delete(matched)
        handle.save_vectors()
    return RemoveReport(files_removed=len(matched), chunks_removed=chunks, paths=matched)


def check(handle: Handle) -> list[Check]:
    """Every invariant of the index (see ``storage.consistency.checks``), under the lock."""
    with handle.lock():
        store, manifest = handle.require()
        return checks(store, handle.data_folder, manifest.model.dimension)


def repair(handle: Handle) -> list[Check]:
    """Rebuild the vector index from the stored vectors (as the structure asked for), bring the
    lexical index in step with the chunks, then ``check``."""
    with handle.lock():
        store, manifest = handle.require()
        dimension, count = manifest.model.dimension, len(store.chunk_ids())
        structure = choose(handle.options.index_type or manifest.index_type, count, dimension, gpu_available())
        handle.replica.rebuild(store, dimension, structure)
        handle.save_vectors()
        store.repair_lexical()
        return check(handle)


def info(handle: Handle) -> IndexInfo:
    """What the index holds and how it is stored."""
    handle.follow()
    store, manifest = handle.require()
    with store.snapshot():
        counts = store.counts()
        vectors = handle.vectors()
    handle.save_vectors()
    model = manifest.model
    size = sum(f.stat().st_size for f in handle.data_folder.iterdir() if f.is_file())
    return IndexInfo(
        path=str(handle.root.resolve()),
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
