"""Keeping the FAISS side in step with SQLite, and checking that it is.

SQLite is the record: documents, chunks and each chunk's vector. A vector file is a cache of it,
named after the database state it was saved at. Within one database's history chunk ids are never
reused and a chunk's vector never changes, so a vector index of any earlier state is brought to
the current one by set difference on ids, reading only the missing vectors: no re-embedding,
whatever the file's age. A file of a state outside that history is not used (see engine.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import IndexCorruptError
from ..results import Check
from .store import Store
from .vectors import FaissIndex, saved_files

CONTENT_SAMPLE = 2_000  # stored vectors compared with the vector index by a check, at most


def sync(vectors: FaissIndex, store: Store, dimension: int) -> bool:
    """Make ``vectors`` hold exactly the stored chunks' vectors; whether anything changed."""
    present, stored = vectors.ids(), store.chunk_ids()
    removed = np.setdiff1d(present, stored)
    added = np.setdiff1d(stored, present)
    vectors.remove(removed)
    for ids, matrix in store.iter_vectors(dimension, added.tolist()):
        vectors.add(ids, matrix)
    return bool(len(removed) or len(added))


def rebuild(store: Store, dimension: int, structure: str, use_gpu: bool = True, seed: int = 0) -> FaissIndex:
    """A new ``structure`` vector index of every stored chunk's vector, trained (IVF) on a random
    sample of them."""
    ids = store.chunk_ids()
    vectors = FaissIndex.empty(structure, dimension, len(ids), use_gpu)
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
    mend = {"vectors of the wrong size": "; re-embed them with 'semsearch ingest --reindex'"}
    checks += [
        Check(name, count == 0, f"{count} found{mend.get(name, '')}" if count else "")
        for name, count in store.problems(dimension).items()
    ]
    state = store.state()
    current = [path for path, saved in saved_files(data) if saved == state or (not saved[1] and saved[0] == state[0])]
    if not current:
        detail = f"no file for the database's state (generation {state[0]}); run 'semsearch repair'"
        return [*checks, Check("vector index file current", False, detail)]
    checks.append(Check("vector index file current", True, current[0].name))
    try:
        vectors = FaissIndex.load(current[0], dimension, use_gpu=False)
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
    masked = extra if vectors.structure == "hnsw" else 0
    detail = f"{missing} chunks without a vector, {extra} vectors without a chunk" if missing or extra else ""
    if masked and not missing:
        detail = f"{masked} removed vectors masked until the next rebuild"
    checks.append(Check("vector index matches the chunks", not missing and extra == masked, detail))
    checks.append(_same_vectors(store, vectors, dimension, chunk_ids))
    return checks


def _same_vectors(store: Store, vectors: FaissIndex, dimension: int, chunk_ids: np.ndarray) -> Check:
    """Whether the vector index holds the stored vectors themselves, not only their ids: all of
    them up to ``CONTENT_SAMPLE`` chunks, else a random sample of that many."""
    name = "vector index holds the stored vectors"
    sample = chunk_ids
    if len(chunk_ids) > CONTENT_SAMPLE:
        sample = np.sort(np.random.default_rng().choice(chunk_ids, CONTENT_SAMPLE, replace=False))
    differ = compared = 0
    try:
        for ids, matrix in store.iter_vectors(dimension, sample.tolist()):
            differ += vectors.contents_differ(ids, matrix)
            compared += len(ids)
    except IndexCorruptError as exc:  # stored vectors of the wrong size: a check above names them
        return Check(name, False, str(exc))
    if not differ:
        return Check(name, True, f"{compared} compared" if compared < len(chunk_ids) else "")
    return Check(name, False, f"{differ} of {compared} compared differ; run 'semsearch repair'")
