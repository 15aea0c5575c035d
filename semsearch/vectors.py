"""The FAISS side: an exact inner-product index over L2-normalised vectors (cosine similarity).

Knows nothing of SQLite. Ids are the caller's (the chunk ids). The file on disk is named after
the generation it was saved at (``vectors-<generation>.faiss``), written to a temporary file,
fsynced and renamed, so a reader finds either a whole old file or a whole new one. The index
lives on the GPU for search when faiss has GPU support and a GPU is present.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IndexCorruptError
from .layout import fsync_folder

_FILE = re.compile(r"^vectors-(\d+)\.faiss$")
_TEMPORARY = re.compile(r"^\.vectors-\d+\.faiss\.tmp\d+$")


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as contiguous float32."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def gpu_available() -> bool:
    """Whether this faiss build has GPU support and sees a GPU."""
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class VectorIndex:
    """Cosine-similarity search over (id, vector) pairs."""

    def __init__(self, dimension: int, index: Any = None, use_gpu: bool = True) -> None:
        import faiss

        self.dimension = dimension
        self.cpu = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self.use_gpu = use_gpu and gpu_available()
        self._gpu: Any = None  # a search copy on the GPU, rebuilt after each change
        self._gpu_resources: Any = None

    def __len__(self) -> int:
        return int(self.cpu.ntotal)

    @property
    def device(self) -> str:
        return "gpu" if self.use_gpu else "cpu"

    @property
    def kind(self) -> str:
        return "flat (exact inner product on normalised vectors)"

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.cpu.add_with_ids(normalize(vectors), np.ascontiguousarray(ids, dtype=np.int64))
            self._gpu = None

    def remove(self, ids: np.ndarray) -> int:
        if not len(ids):
            return 0
        # faiss's Python wrapper accepts an id array where its stubs say IDSelector
        removed = int(self.cpu.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))  # type: ignore[arg-type]
        self._gpu = None
        return removed

    def ids(self) -> np.ndarray:
        """Every id in the index."""
        import faiss

        return faiss.vector_to_array(self.cpu.id_map).astype(np.int64)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (len(queries), k'), best first; k' = min(k, size)."""
        k = min(k, len(self))
        if k <= 0:
            empty = np.zeros((len(queries), 0))
            return empty.astype(np.float32), empty.astype(np.int64)
        if not self.use_gpu:
            return self.cpu.search(normalize(queries), k)
        # the GPU copy holds the bare flat index; positions map to ids through the id map
        scores, positions = self._gpu_flat().search(normalize(queries), k)
        ids = self.ids()[np.maximum(positions, 0)]
        return scores, np.where(positions < 0, -1, ids)

    def _gpu_flat(self) -> Any:
        if self._gpu is None:
            import faiss

            self._gpu_resources = self._gpu_resources or faiss.StandardGpuResources()
            self._gpu = faiss.index_cpu_to_gpu(self._gpu_resources, 0, faiss.downcast_index(self.cpu.index))
        return self._gpu

    # -- files ------------------------------------------------------------------------------

    def save(self, folder: Path, generation: int) -> Path:
        """Write atomically as the file of ``generation``; older files and leftovers of
        interrupted saves are then removed. Only the holder of the writer lock may call this."""
        import faiss

        path = folder / f"vectors-{generation}.faiss"
        temporary = folder / f".vectors-{generation}.faiss.tmp{os.getpid()}"
        try:
            faiss.write_index(self.cpu, str(temporary))
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        fsync_folder(folder)
        for entry in folder.iterdir():
            match = _FILE.match(entry.name)
            if (match and int(match.group(1)) != generation) or _TEMPORARY.match(entry.name):
                entry.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: Path, dimension: int, use_gpu: bool = True) -> VectorIndex:
        """Read a saved file; FileNotFoundError when it is gone, IndexCorruptError when damaged."""
        import faiss

        if not path.exists():
            raise FileNotFoundError(path)
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            if not path.exists():  # removed by a writer between the check and the read
                raise FileNotFoundError(path) from exc
            raise IndexCorruptError(
                f"Cannot read the vector index {path}: {_first_line(exc)}; run 'semsearch repair' to rebuild it"
            ) from exc
        if index.d != dimension or not isinstance(index, faiss.IndexIDMap2):
            raise IndexCorruptError(
                f"{path} is not a {dimension}-d semsearch vector index (it holds {index.d}-d vectors); "
                "run 'semsearch repair' to rebuild it"
            )
        return cls(dimension, index, use_gpu)

    @classmethod
    def load_newest(cls, folder: Path, dimension: int, use_gpu: bool = True) -> tuple[VectorIndex, int | None]:
        """The newest saved file in ``folder`` and its generation; an empty index and None if
        there is none. A file removed by a concurrent writer while loading is retried."""
        for _ in range(5):
            files = saved_files(folder)
            if not files:
                break
            path, generation = files[0]
            try:
                return cls.load(path, dimension, use_gpu), generation
            except FileNotFoundError:
                continue
        return cls(dimension, use_gpu=use_gpu), None


def saved_files(folder: Path) -> list[tuple[Path, int]]:
    """The vector index files in ``folder`` with their generations, newest first."""
    found = []
    for entry in folder.iterdir() if folder.exists() else []:
        match = _FILE.match(entry.name)
        if match:
            found.append((entry, int(match.group(1))))
    return sorted(found, key=lambda item: -item[1])


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
