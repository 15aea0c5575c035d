"""The FAISS side: cosine similarity (inner product over L2-normalised vectors) over chunk ids.

Knows nothing of SQLite. Ids are the caller's (the chunk ids). Three structures:

- ``flat``: exact search, the default while it is fast enough (``choose``);
- ``ivf``: an inverted file (k-means lists, ``nprobe`` of them searched), the default above that,
  on a GPU and on a CPU alike;
- ``hnsw``: a graph, on request. It needs a search breadth growing with its size to keep its
  recall, and faiss cannot delete from it, so removed ids are masked out of searches until the
  owner rebuilds it (``worn``). scripts/bench_search.py measured both at 1 M vectors: IVF
  reached recall@10 0.995 at 326 queries/s after a 192 s build on 2 cores, HNSW 0.974 at 181
  queries/s after 697 s, so ``auto`` picks IVF.

The file on disk is named after the database state it mirrors (``vectors-<generation>-<token>.faiss``),
written to a temporary file, fsynced and renamed, so a reader finds either a whole old file or a
whole new one. Flat and IVF indexes are searched on the GPU when faiss has GPU support and a GPU
is present, in float16 once they are large.
"""

from __future__ import annotations

import errno
import math
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IndexCorruptError, InvalidOptionError, first_line
from .layout import disk_full, fsync_folder

_FILE = re.compile(r"^vectors-(\d+)(?:-([0-9a-f]{16}))?\.faiss$")
_TEMPORARY = re.compile(r"^\.vectors-[0-9a-f-]+\.faiss\.tmp\d+$")
State = tuple[int, str]  # the database state a file mirrors: (generation, token); "" for a file of an older version

INDEX_TYPES = ("auto", "flat", "ivf", "hnsw")
# Exact search while vectors x dimension stays under these: on 2 CPU cores 50 M floats take
# about 20 ms a query (scripts/bench_search.py), on a GPU 4 G floats a few milliseconds.
FLAT_MAX_CPU = 50_000_000
FLAT_MAX_GPU = 4_000_000_000
FLOAT16_FROM = 500_000_000  # a GPU copy of more floats than this (2 GB) stores float16
IVF_MIN = 1_000  # fewer vectors cannot train an IVF index usefully: flat is used
IVF_NPROBE = 16
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 128
HNSW_EF_PER = 1_000  # efSearch grows by one per this many vectors above 128 000
GPU_MAX_K = 2048  # faiss's GPU indexes return at most this many neighbours a query
WORN_SHARE = 0.25  # rebuild an HNSW index once this share of it is removed vectors


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as contiguous float32."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def gpu_available() -> bool:
    """Whether this faiss build has GPU support and sees a GPU."""
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def choose(requested: str, count: int, dimension: int, gpu: bool) -> str:
    """The structure for ``count`` vectors: ``requested`` unless it is ``auto`` (flat while exact
    search is fast enough on this device, then IVF); IVF needs ``IVF_MIN`` vectors."""
    if requested not in INDEX_TYPES:
        raise InvalidOptionError(f"Unknown index type {requested!r}; use one of {', '.join(INDEX_TYPES)}")
    structure = requested
    if structure == "auto":
        exact_enough = count * dimension <= (FLAT_MAX_GPU if gpu else FLAT_MAX_CPU)
        structure = "flat" if exact_enough else "ivf"
    return "flat" if structure == "ivf" and count < IVF_MIN else structure


def ivf_lists(count: int) -> int:
    """IVF lists for ``count`` vectors: about 4 sqrt(count), with at least 39 training points each."""
    return max(1, min(int(4 * math.sqrt(count)), count // 39))


def hnsw_ef_search(count: int) -> int:
    """HNSW search breadth for ``count`` vectors: 128 up to 128 000 vectors, then count / 1000
    (recall@10 0.991 at 100 k and 0.974 at 1 M in scripts/bench_search.py)."""
    return max(HNSW_EF_SEARCH, count // HNSW_EF_PER)


def _new(structure: str, dimension: int, count: int) -> Any:
    import faiss

    if structure == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
    if structure == "hnsw":
        graph = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        return faiss.IndexIDMap2(graph)
    # IVF keeps the caller's ids itself: IndexIDMap's removal assumes a sub-index that renumbers
    quantizer = faiss.IndexFlatIP(dimension)
    return faiss.IndexIVFFlat(quantizer, dimension, ivf_lists(count), faiss.METRIC_INNER_PRODUCT)


class FaissIndex:
    """Cosine-similarity search over (id, vector) pairs."""

    def __init__(self, dimension: int, index: Any = None, use_gpu: bool = True) -> None:
        self.dimension = dimension
        self.cpu = index if index is not None else _new("flat", dimension, 0)
        self.use_gpu = use_gpu and gpu_available()
        self.dead = np.zeros(0, dtype=np.int64)  # removed from an HNSW index, masked out of searches
        self._gpu: Any = None  # a search copy on the GPU, rebuilt after each change
        self._gpu_ids = np.zeros(0, dtype=np.int64)  # a flat GPU copy's positions -> ids
        self._gpu_resources: Any = None

    @classmethod
    def empty(cls, structure: str, dimension: int, count: int, use_gpu: bool = True) -> FaissIndex:
        """A new ``structure`` index sized for about ``count`` vectors; IVF must be ``train``ed."""
        return cls(dimension, _new(structure, dimension, count), use_gpu)

    def __len__(self) -> int:
        return int(self.cpu.ntotal) - len(self.dead)

    @property
    def structure(self) -> str:
        """flat, ivf or hnsw."""
        import faiss

        if isinstance(self.cpu, faiss.IndexIVF):
            return "ivf"
        return "hnsw" if isinstance(faiss.downcast_index(self.cpu.index), faiss.IndexHNSW) else "flat"

    @property
    def device(self) -> str:
        return "gpu" if self.use_gpu and self.structure != "hnsw" else "cpu"

    @property
    def max_k(self) -> int:
        """The most neighbours one search returns: all of them, but GPU_MAX_K on a GPU."""
        return GPU_MAX_K if self.device == "gpu" else max(1, len(self))

    def describe(self) -> str:
        """The structure and its search settings, for ``info``."""
        if self.structure == "ivf":
            return f"ivf ({self.cpu.nlist} lists, {IVF_NPROBE} searched)"
        if self.structure == "hnsw":
            return f"hnsw (M {HNSW_M}, efSearch {hnsw_ef_search(int(self.cpu.ntotal))})"
        return "flat (exact)"

    @property
    def needs_training(self) -> bool:
        return not self.cpu.is_trained

    def train(self, sample: np.ndarray) -> None:
        self.cpu.train(normalize(sample))

    def training_size(self) -> int:
        """How many sample vectors ``train`` wants."""
        return 64 * int(self.cpu.nlist) if self.structure == "ivf" else 0

    def worn(self, count: int) -> bool:
        """Whether the structure no longer suits ``count`` live vectors and should be rebuilt:
        an HNSW index with many removed vectors, or IVF lists trained for a far smaller size."""
        if self.structure == "hnsw":
            return len(self.dead) > WORN_SHARE * max(1, int(self.cpu.ntotal))
        return self.structure == "ivf" and ivf_lists(count) > 2 * int(self.cpu.nlist)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if not len(ids):
            return
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(self.dead):  # an id removed and then added again: drop the masked copy first
            again = np.intersect1d(ids, self.dead)
            if len(again):
                raise ValueError(f"chunk id {int(again[0])} was removed from this HNSW index; rebuild it")
        self.cpu.add_with_ids(normalize(vectors), ids)
        self._gpu = None

    def remove(self, ids: np.ndarray) -> int:
        if not len(ids):
            return 0
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if self.structure == "hnsw":
            gone = np.setdiff1d(np.intersect1d(ids, self._all_ids()), self.dead)
            self.dead = np.union1d(self.dead, gone)
            return len(gone)
        # faiss's Python wrapper accepts an id array where its stubs say IDSelector
        removed = int(self.cpu.remove_ids(ids))  # type: ignore[arg-type]
        self._gpu = None
        return removed

    def ids(self) -> np.ndarray:
        """Every live id in the index."""
        every = self._all_ids()
        return np.setdiff1d(every, self.dead, assume_unique=True) if len(self.dead) else every

    def _all_ids(self) -> np.ndarray:
        import faiss

        if self.structure != "ivf":
            return faiss.vector_to_array(self.cpu.id_map).astype(np.int64)
        lists = self.cpu.invlists
        parts = [
            faiss.rev_swig_ptr(lists.get_ids(number), lists.list_size(number)).copy()
            for number in range(lists.nlist)
            if lists.list_size(number)
        ]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (len(queries), k'), best first; k' = min(k, size). An approximate
        structure may return fewer than k' hits for a query: the missing ones have id -1."""
        import faiss

        k = min(k, len(self), self.max_k)
        queries = normalize(queries)
        if k <= 0:
            empty = np.zeros((len(queries), 0))
            return empty.astype(np.float32), empty.astype(np.int64)
        if self.structure == "hnsw":
            removed = faiss.IDSelectorBatch(self.dead)  # kept referenced until the search returns
            mask = faiss.IDSelectorNot(removed) if len(self.dead) else None
            breadth = hnsw_ef_search(int(self.cpu.ntotal))
            params = faiss.SearchParametersHNSW(efSearch=breadth, sel=mask)  # type: ignore[attr-defined]
            return self.cpu.search(queries, k, params=params)
        if self.structure == "ivf":
            params = faiss.SearchParametersIVF(nprobe=IVF_NPROBE)  # type: ignore[call-arg]
            if not self.use_gpu:
                return self.cpu.search(queries, k, params=params)
            return self._gpu_copy().search(queries, k)
        if not self.use_gpu:
            return self.cpu.search(queries, k)
        # the GPU copy holds the bare flat index; positions map to ids through the id map
        scores, positions = self._gpu_copy().search(queries, k)
        ids = self._gpu_ids[np.maximum(positions, 0)]
        return scores, np.where(positions < 0, -1, ids)

    def drop_gpu_copy(self) -> None:
        """Forget the GPU copy: it is made again, with the settings of then, at the next search."""
        self._gpu = None

    def _gpu_copy(self) -> Any:
        if self._gpu is None:
            import faiss

            self._gpu_resources = self._gpu_resources or faiss.StandardGpuResources()
            options = faiss.GpuClonerOptions()
            options.useFloat16 = int(self.cpu.ntotal) * self.dimension > FLOAT16_FROM
            source = self.cpu if self.structure == "ivf" else faiss.downcast_index(self.cpu.index)
            self._gpu = faiss.index_cpu_to_gpu(self._gpu_resources, 0, source, options)
            self._gpu_ids = self._all_ids() if self.structure == "flat" else self._gpu_ids
            if self.structure == "ivf":
                self._gpu.nprobe = IVF_NPROBE
        return self._gpu

    # -- files ------------------------------------------------------------------------------

    def save(self, folder: Path, state: State) -> Path:
        """Write atomically as the file of database ``state``; older files and leftovers of
        interrupted saves are then removed. Only the holder of the writer lock may call this."""
        import faiss

        name = f"vectors-{state[0]}-{state[1]}" if state[1] else f"vectors-{state[0]}"
        path = folder / f"{name}.faiss"
        temporary = folder / f".{name}.faiss.tmp{os.getpid()}"
        try:
            faiss.write_index(self.cpu, str(temporary))
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except (RuntimeError, OSError) as exc:
            if getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in str(exc):
                raise disk_full(path, "the vector file could not be written") from exc
            raise
        finally:
            temporary.unlink(missing_ok=True)
        fsync_folder(folder)
        for entry in folder.iterdir():
            if (_FILE.match(entry.name) and entry != path) or _TEMPORARY.match(entry.name):
                entry.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: Path, dimension: int, use_gpu: bool = True) -> FaissIndex:
        """Read a saved file; FileNotFoundError when it is gone, IndexCorruptError when damaged."""
        import faiss

        if not path.exists():
            raise FileNotFoundError(path)
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would make the read wait for ever
            raise IndexCorruptError(f"{path} is not a regular file; delete it and run 'semsearch repair'")
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            if not path.exists():  # removed by a writer between the check and the read
                raise FileNotFoundError(path) from exc
            raise IndexCorruptError(
                f"Cannot read the vector index {path}: {first_line(exc)}; run 'semsearch repair' to rebuild it"
            ) from exc
        if index.d != dimension or not isinstance(index, faiss.IndexIDMap2 | faiss.IndexIVFFlat):
            raise IndexCorruptError(
                f"{path} is not a {dimension}-d semsearch vector index (it holds {index.d}-d vectors); "
                "run 'semsearch repair' to rebuild it"
            )
        return cls(dimension, index, use_gpu)

    @classmethod
    def load_newest(
        cls, folder: Path, dimension: int, accept: Callable[[State], bool], use_gpu: bool = True
    ) -> tuple[FaissIndex, State | None, list[Path]]:
        """The newest saved file in ``folder`` whose state ``accept`` takes, with that state; an
        empty index and None if there is none; and the files passed over as not accepted. A file
        removed by a concurrent writer while loading is retried."""
        for _ in range(5):
            files = saved_files(folder)
            accepted = [(path, state) for path, state in files if accept(state)]
            rejected = [path for path, state in files if (path, state) not in accepted]
            if not accepted:
                return cls(dimension, use_gpu=use_gpu), None, rejected
            path, state = accepted[0]
            try:
                return cls.load(path, dimension, use_gpu), state, rejected
            except FileNotFoundError:
                continue
        return cls(dimension, use_gpu=use_gpu), None, []

    def contents_differ(self, ids: np.ndarray, vectors: np.ndarray, tolerance: float = 1e-4) -> int:
        """How many of ``ids`` this index holds with another vector than ``vectors`` (rows of
        the same order, as stored), or not at all."""
        import faiss

        index = self.cpu
        if self.structure == "ivf":
            index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
        expected = normalize(vectors)
        differ = 0
        for chunk_id, vector in zip(ids.tolist(), expected, strict=True):
            try:
                found = index.reconstruct(int(chunk_id))
            except RuntimeError:  # not in the index
                differ += 1
                continue
            differ += not np.allclose(found, vector, atol=tolerance)
        return differ


def saved_files(folder: Path) -> list[tuple[Path, State]]:
    """The vector index files in ``folder`` with the states they mirror, newest first."""
    found = []
    for entry in folder.iterdir() if folder.exists() else []:
        match = _FILE.match(entry.name)
        if match:
            found.append((entry, (int(match.group(1)), match.group(2) or "")))
    return sorted(found, key=lambda item: -item[1][0])
