"""Ingest and search: the only module that knows sources, chunking, encoder, store and vectors."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import DEFAULT_MODEL, ChunkSettings, Manifest, tqdm_disable
from .errors import (
    IndexCorruptError,
    IndexNotFoundError,
    InvalidOptionError,
    InvalidQueryError,
    ModelMismatchError,
    NothingToIngestError,
    SourceNotFoundError,
)
from .prepare import Prepared, Unchanged, prepare
from .results import Check, Hit, IndexInfo, IngestReport, RemoveReport
from .sources import Skipped, walk
from .store import Store
from .vectors import VectorIndex, saved_files

if TYPE_CHECKING:
    from .encoder import Encoder

_FLUSH_CHUNKS = 512  # chunks embedded and committed together


def open_index(
    path: str | os.PathLike[str] = ".semsearch",
    model: str | None = None,
    *,
    device: str = "auto",
    fp32: bool = False,
    chunking: ChunkSettings | None = None,
    create: bool = True,
) -> Index:
    """Open the index in folder ``path``, or prepare a new one there (written on first ingest).

    ``model`` (a hub id or a local sentence-transformers folder) is needed only for a new index;
    for an existing one it must be the model the index was built with. ``create=False`` raises
    IndexNotFoundError when there is no index yet.
    """
    folder = Path(path)
    store = Store.open(folder) if (folder / Store.FILENAME).exists() else None
    manifest = store.manifest() if store else None
    if store is not None and manifest is None and store.counts()["chunks"]:
        raise IndexCorruptError(f"{store.path} has chunks but no manifest; rebuild the index with a new --index")
    if manifest is None and not create:
        raise IndexNotFoundError(f"No index at {folder}; run 'semsearch ingest DIR' first")
    if manifest is not None:
        if model is not None and not _same_model(model, manifest):
            raise ModelMismatchError(
                f"The index at {folder} was built with model '{manifest.model.model}' "
                f"({manifest.model.dimension}-d); '{model}' was asked for. "
                "Use the index's model, or another --index for a new one"
            )
        if chunking is not None and chunking != manifest.chunking:
            raise InvalidOptionError(
                f"The index at {folder} was built with {manifest.chunking.chunk_tokens}-token chunks and "
                f"{manifest.chunking.overlap_tokens}-token overlap; build a new index to change them"
            )
    return Index(folder, store, manifest, model or DEFAULT_MODEL, device, fp32, chunking)


def _same_model(model: str, manifest: Manifest) -> bool:
    if model == manifest.model.model:
        return True
    if Path(model).expanduser().is_dir() and manifest.model.revision is None:
        from .hub import fingerprint

        return fingerprint(Path(model).expanduser()) == manifest.model.fingerprint
    return False


class Index:
    """A semsearch index: documents, chunks and vectors in one folder. Use ``open_index``."""

    def __init__(
        self,
        folder: Path,
        store: Store | None,
        manifest: Manifest | None,
        model: str,
        device: str,
        fp32: bool,
        chunking: ChunkSettings | None,
    ) -> None:
        self.folder = folder
        self.manifest = manifest
        self.notes: list[str] = []  # things worth telling the user, such as a rebuilt vector index
        self._store = store
        self._model = manifest.model.model if manifest else model
        self._device = device
        self._fp32 = fp32
        self._chunking = chunking
        self._encoder: Encoder | None = None
        self._vectors: VectorIndex | None = None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- parts, loaded on first use ---------------------------------------------------------

    @property
    def encoder(self) -> Encoder:
        """The embedding pipeline, loaded on first use."""
        if self._encoder is None:
            from .encoder import Encoder

            revision = self.manifest.model.revision if self.manifest else None
            encoder = Encoder.load(self._model, self._device, revision=revision, fp32=self._fp32)
            if self.manifest is not None:
                built = self.manifest.model
                if (encoder.info.fingerprint, encoder.dimension) != (built.fingerprint, built.dimension):
                    raise ModelMismatchError(
                        f"Model '{self._model}' is now {encoder.dimension}-d with fingerprint "
                        f"{encoder.info.fingerprint}; the index at {self.folder} was built with "
                        f"{built.dimension}-d, fingerprint {built.fingerprint}. Use the original model files"
                    )
            self._encoder = encoder
        return self._encoder

    def _vector_index(self) -> VectorIndex:
        if self._vectors is None:
            assert self._store is not None and self.manifest is not None
            dimension = self.manifest.model.dimension
            generation = self._store.generation()
            files = saved_files(self.folder)
            current = [path for path, g in files if g == generation]
            if current:
                self._vectors = VectorIndex.load(current[0], dimension)
            else:
                self._vectors = self._rebuild_vectors(dimension, generation)
                if files or len(self._vectors):
                    self.notes.append("The vector index did not match the database; rebuilt it from stored vectors")
        return self._vectors

    def _rebuild_vectors(self, dimension: int, generation: int) -> VectorIndex:
        assert self._store is not None
        vectors = VectorIndex(dimension)
        for ids, matrix in self._store.iter_vectors(dimension):
            vectors.add(ids, matrix)
        with contextlib.suppress(OSError):  # a read-only index still answers from memory
            vectors.save(self.folder, generation)
        return vectors

    def _writable_store(self) -> Store:
        manifest = self.manifest
        if manifest is None:  # a new index: settle the manifest before writing anything
            encoder = self.encoder
            chunking = self._chunking or ChunkSettings(
                chunk_tokens=min(ChunkSettings().chunk_tokens, encoder.max_text_tokens)
            )
            self._check_chunking(chunking, encoder.max_text_tokens)
            manifest = Manifest(model=encoder.info, chunking=chunking)
        if self._store is None:
            self._store = Store.open(self.folder, create=True)
        if self.manifest is None:
            self._store.set_manifest(manifest)
            self.manifest = manifest
        return self._store

    @staticmethod
    def _check_chunking(chunking: ChunkSettings, limit: int) -> None:
        if not 1 <= chunking.chunk_tokens <= limit:
            raise InvalidOptionError(f"--chunk-tokens must be between 1 and {limit} for this model")
        if not 0 <= chunking.overlap_tokens < chunking.chunk_tokens:
            raise InvalidOptionError("--overlap-tokens must be at least 0 and less than --chunk-tokens")

    # -- ingest -------------------------------------------------------------------------------

    def ingest(self, paths: list[str | os.PathLike[str]], *, progress: bool | None = False) -> IngestReport:
        """Add, update and remove documents so the index matches ``paths`` (files or folders).

        Unchanged files (same size and mtime, or same content) are not embedded again; files
        gone from an ingested folder are removed. ``progress`` shows a bar on stderr (None: on
        a terminal only).
        """
        from tqdm.auto import tqdm

        started = time.perf_counter()
        found = walk([Path(p) for p in paths], exclude=[self.folder])
        store = self._store
        known = store.documents(found.folders) if store else {}
        if not found.files and not known:
            where = ", ".join(str(p) for p in paths)
            raise NothingToIngestError(f"No text files (.txt .md .markdown .rst) in {where}")
        store = self._writable_store()
        given = {str(f) for f in found.files}
        known.update({p: d for p, d in store.documents().items() if p in given})
        report = IngestReport(skipped=list(found.skipped))
        pending: list[Prepared] = []
        kept: set[str] = set()
        bar = tqdm(found.files, desc="Ingesting", unit="file", disable=tqdm_disable(progress))
        assert self.manifest is not None
        encoder, settings = self.encoder, self.manifest.chunking
        for path in bar:
            item = prepare(path, known.get(str(path)), encoder.token_spans, settings, encoder.max_text_tokens)
            if isinstance(item, Skipped):
                report.skipped.append(item)
                continue
            kept.add(str(path))
            if isinstance(item, Unchanged):
                report.files_unchanged += 1
            else:
                pending.append(item)
                if sum(len(p.chunks) for p in pending) >= _FLUSH_CHUNKS:
                    self._flush(pending, report)
                    pending = []
                    bar.set_postfix(chunks=report.chunks_embedded)
        self._flush(pending, report)
        stale = [p for p in known if p not in kept]
        self._delete(stale)
        report.files_removed = len(stale)
        self._vector_index().save(self.folder, store.generation())
        report.chunks_total = store.counts()["chunks"]
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def _flush(self, pending: list[Prepared], report: IngestReport) -> None:
        if not pending:
            return
        store = self._writable_store()
        vectors = self._vector_index()
        texts = [c.text for p in pending for c in p.chunks]
        embedded = self.encoder.encode(texts)
        added: list[int] = []
        old = store.chunk_ids_of([p.document["path"] for p in pending])
        with store.transaction():
            offset = 0
            for item in pending:
                rows = [asdict(c) for c in item.chunks]
                block = embedded[offset : offset + len(rows)]
                added.extend(store.put_document(item.document, rows, block))
                offset += len(rows)
        vectors.remove(np.array(old, dtype=np.int64))
        vectors.add(np.array(added, dtype=np.int64), embedded)
        report.chunks_embedded += len(texts)
        report.files_updated += sum(1 for p in pending if p.is_update)
        report.files_added += sum(1 for p in pending if not p.is_update)

    def _delete(self, paths: list[str]) -> int:
        if not paths or self._store is None:
            return 0
        ids = self._store.chunk_ids_of(paths)
        with self._store.transaction():
            self._store.delete_documents(paths)
        self._vector_index().remove(np.array(ids, dtype=np.int64))
        return len(ids)

    # -- remove, search, info ----------------------------------------------------------------

    def remove(self, paths: list[str | os.PathLike[str]]) -> RemoveReport:
        """Take the documents at ``paths`` (files, or everything under folders) out of the index."""
        store, _ = self._require()
        documents = store.documents()
        matched: list[str] = []
        for given in paths:
            target = os.path.abspath(given)
            hits = [p for p in documents if p == target or p.startswith(target.rstrip("/") + "/")]
            if not hits:
                raise SourceNotFoundError(f"Nothing indexed at {given}")
            matched.extend(h for h in hits if h not in matched)
        chunks = self._delete(matched)
        self._vector_index().save(self.folder, store.generation())
        return RemoveReport(files_removed=len(matched), chunks_removed=chunks, paths=matched)

    def search(self, query: str, k: int = 10, min_score: float | None = None) -> list[Hit]:
        """The ``k`` passages most similar to ``query``, best first (cosine similarity)."""
        return self.search_many([query], k, min_score)[0]

    def search_many(self, queries: list[str], k: int = 10, min_score: float | None = None) -> list[list[Hit]]:
        """``search`` for several queries, embedded together."""
        if k < 1:
            raise InvalidOptionError("k must be at least 1")
        for query in queries:
            if not query.strip():
                raise InvalidQueryError("The query is empty")
        if self._store is None or self.manifest is None:
            return [[] for _ in queries]
        vectors = self._vector_index()
        if not len(vectors):
            return [[] for _ in queries]
        scores, ids = vectors.search(self.encoder.encode(queries), k)
        rows = self._store.chunks(sorted({int(i) for i in ids.ravel() if i >= 0}))
        return [self._hits(s, i, rows, min_score) for s, i in zip(scores, ids, strict=True)]

    @staticmethod
    def _hits(
        scores: np.ndarray, ids: np.ndarray, rows: dict[int, dict[str, Any]], min_score: float | None
    ) -> list[Hit]:
        hits: list[Hit] = []
        for score, chunk_id in zip(scores, ids, strict=True):
            row = rows.get(int(chunk_id))
            if row is None or (min_score is not None and score < min_score):
                continue
            hit = Hit(
                len(hits) + 1, float(score), row["text"], row["path"], row["line"], row["start"], row["end"], row["id"]
            )
            hits.append(hit)
        return hits

    def check(self) -> list[Check]:
        """Verify the index's invariants: SQLite sound, every chunk with exactly one vector in
        SQLite and in FAISS and the reverse, the FAISS file current, no orphan documents."""
        store, manifest = self._require()
        dimension = manifest.model.dimension
        quick = store.quick_check()
        checks = [Check("sqlite integrity", quick == "ok", "" if quick == "ok" else quick)]
        checks += [
            Check(name, count == 0, f"{count} found" if count else "")
            for name, count in store.problems(dimension).items()
        ]
        generation = store.generation()
        current = [path for path, g in saved_files(self.folder) if g == generation]
        if not current:
            checks.append(
                Check(
                    "vector index file current", False, f"no file for generation {generation}; run 'semsearch repair'"
                )
            )
            return checks
        checks.append(Check("vector index file current", True, current[0].name))
        try:
            faiss_ids = VectorIndex.load(current[0], dimension, use_gpu=False).ids()
        except IndexCorruptError as exc:
            checks.append(Check("vector index readable", False, str(exc)))
            return checks
        chunk_ids = store.chunk_ids()
        unique = np.unique(faiss_ids)
        checks.append(
            Check(
                "no id twice in the vector index",
                len(unique) == len(faiss_ids),
                f"{len(faiss_ids) - len(unique)} repeated" if len(unique) != len(faiss_ids) else "",
            )
        )
        missing = len(np.setdiff1d(chunk_ids, unique))
        extra = len(np.setdiff1d(unique, chunk_ids))
        detail = f"{missing} chunks without a vector, {extra} vectors without a chunk" if missing or extra else ""
        checks.append(Check("vector index matches the chunks", not (missing or extra), detail))
        return checks

    def repair(self) -> list[Check]:
        """Rebuild the vector index from the vectors stored in SQLite, then ``check``."""
        store, manifest = self._require()
        self._vectors = self._rebuild_vectors(manifest.model.dimension, store.generation())
        return self.check()

    def _require(self) -> tuple[Store, Manifest]:
        if self._store is None or self.manifest is None:
            raise IndexNotFoundError(f"No index at {self.folder}; run 'semsearch ingest DIR' first")
        return self._store, self.manifest

    def info(self) -> IndexInfo:
        """What the index holds and how it is stored."""
        store, manifest = self._require()
        counts = store.counts()
        vectors = self._vector_index()
        model = manifest.model
        size = sum(f.stat().st_size for f in self.folder.iterdir() if f.is_file())
        return IndexInfo(
            path=str(self.folder.resolve()),
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
            index_type=vectors.kind,
            index_device=vectors.device,
            size_bytes=size,
            semsearch_version=manifest.semsearch_version,
        )
