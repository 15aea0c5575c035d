"""Keeping the FAISS side in step with SQLite, and checking that it is.

SQLite is the record: documents, chunks and each chunk's vector. A vector file is a cache of it,
named after the SQLite generation it was saved at. Chunk ids are never reused and a chunk's
vector never changes, so any vector index is brought to the database's state by set difference
on ids, reading only the missing vectors: no re-embedding, whatever the file's age.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import IndexCorruptError
from .results import Check
from .store import Store
from .vectors import VectorIndex, saved_files


def sync(vectors: VectorIndex, store: Store, dimension: int) -> bool:
    """Make ``vectors`` hold exactly the stored chunks' vectors; whether anything changed."""
    present, stored = vectors.ids(), store.chunk_ids()
    removed = np.setdiff1d(present, stored)
    added = np.setdiff1d(stored, present)
    vectors.remove(removed)
    for ids, matrix in store.iter_vectors(dimension, added.tolist()):
        vectors.add(ids, matrix)
    return bool(len(removed) or len(added))


def rebuild(store: Store, dimension: int, kind: str, use_gpu: bool = True, seed: int = 0) -> VectorIndex:
    """A new ``kind`` vector index of every stored chunk's vector, trained (IVF) on a random
    sample of them."""
    ids = store.chunk_ids()
    vectors = VectorIndex.empty(kind, dimension, len(ids), use_gpu)
    if vectors.needs_training:
        size = min(len(ids), vectors.training_size())
        sample = np.sort(np.random.default_rng(seed).choice(ids, size, replace=False))
        vectors.train(np.concatenate([matrix for _, matrix in store.iter_vectors(dimension, sample.tolist())]))
    sync(vectors, store, dimension)
    return vectors


def checks(store: Store, data: Path, dimension: int) -> list[Check]:
    """Every invariant of the index in ``data``: SQLite sound, each chunk with one vector in SQLite
    and in the current vector file and the reverse, no orphan documents."""
    quick = store.quick_check()
    checks = [Check("sqlite integrity", quick == "ok", "" if quick == "ok" else quick)]
    checks += [
        Check(name, count == 0, f"{count} found" if count else "") for name, count in store.problems(dimension).items()
    ]
    generation = store.generation()
    current = [path for path, g in saved_files(data) if g == generation]
    if not current:
        detail = f"no file for generation {generation}; run 'semsearch repair'"
        return [*checks, Check("vector index file current", False, detail)]
    checks.append(Check("vector index file current", True, current[0].name))
    try:
        vectors = VectorIndex.load(current[0], dimension, use_gpu=False)
    except IndexCorruptError as exc:
        return [*checks, Check("vector index readable", False, str(exc))]
    faiss_ids = vectors.ids()
    unique = np.unique(faiss_ids)
    repeated = len(faiss_ids) - len(unique)
    checks.append(Check("no id twice in the vector index", not repeated, f"{repeated} repeated" if repeated else ""))
    chunk_ids = store.chunk_ids()
    missing = len(np.setdiff1d(chunk_ids, unique))
    extra = len(np.setdiff1d(unique, chunk_ids))
    # faiss cannot delete from HNSW: removed chunks' vectors stay in the file, masked when loaded
    masked = extra if vectors.kind == "hnsw" else 0
    detail = f"{missing} chunks without a vector, {extra} vectors without a chunk" if missing or extra else ""
    if masked and not missing:
        detail = f"{masked} removed vectors masked until the next rebuild"
    checks.append(Check("vector index matches the chunks", not missing and extra == masked, detail))
    return checks
