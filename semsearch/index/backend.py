"""The storage seam: what every backend does for ingest, search, maintenance and migration.

``Backend`` is the contract; ``Handle`` (SQLite + FAISS in a local folder) and ``MilvusBackend``
(a Milvus collection set, embedded Lite or a server) implement it. The pipeline above it (walking,
reading, chunking, embedding in batches, ranking, fusion, context passages) is shared and knows
nothing of how a backend keeps its data. What the contract promises, on every backend:

- a document is published whole with its chunks, vectors and lexical terms (``commit``): a reader
  sees the old version or the new, never a mix, never both;
- chunk ids are stable while a chunk exists and never reused for another chunk;
- ``dense`` and ``lexical`` apply a filter before taking the top k, so k hits come back while k
  chunks match;
- staged work (the embedded part of a file not finished) survives a stop and is never visible;
- ``check`` reports every broken invariant, ``repair`` mends what it can without re-embedding.

The shared parts live here too: loading the model once, checked against the manifest.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import DEFAULT_MODEL, ChunkSettings, Manifest
from ..documents.chunking import Chunk
from ..documents.prepare import Document
from ..errors import IndexNotFoundError, SemsearchError
from ..query import Where
from ..results import Check, IndexInfo
from ..storage.rows import ChunkRow
from . import manifest as manifests

if TYPE_CHECKING:
    from ..embedding.encoder import Encoder
    from ..embedding.reranker import Reranker

Candidates = list[tuple[int, float]]  # (chunk id, score), best first


@dataclass(frozen=True)
class Options:
    """How an index is opened: the model asked for (None: the index's own), the device, float32
    everywhere, chunking and vector structure for a new index (or a change of structure), what a
    write does while another process writes (fail, wait, or wait that many seconds), and the
    engine and precision the models run at (``embedding.precision.choose``)."""

    model: str | None = None
    device: str = "auto"
    fp32: bool = False
    chunking: ChunkSettings | None = None
    wait: bool | float = False
    index_type: str | None = None  # the vector structure asked for; None: the manifest's
    precision: str = "auto"
    runtime: str = "auto"


@dataclass(frozen=True)
class Published:
    """A whole document to publish: its row, its chunks in order and one vector per chunk."""

    document: Document
    chunks: Sequence[Chunk]
    vectors: np.ndarray
    reused: bool = False  # taken from an indexed copy of the same content (nothing staged)


@dataclass(frozen=True)
class Staged:
    """Embedded chunks (seq, start, end) of a file not finished yet, kept until it is."""

    content_hash: str
    path: str
    rows: Sequence[tuple[int, int, int]]
    vectors: np.ndarray


class Backend(ABC):
    """An open index on some storage. Not thread-safe: ``Index`` gives one call at a time."""

    def __init__(self, location: str, options: Options) -> None:
        self.location = location  # what the user named: a folder, or a milvus URI (no secret in it)
        self.options = options
        self.manifest: Manifest | None = None
        self.model = options.model or DEFAULT_MODEL  # the model to load: asked for, else the index's
        self.notes: list[str] = []  # things worth telling the user
        self._encoder: Encoder | None = None
        self._rerankers: dict[str, Reranker] = {}

    # -- the model (shared) --------------------------------------------------------------------

    def encoder(self) -> Encoder:
        """The embedding pipeline, loaded on first use (and checked against the manifest)."""
        if self._encoder is None:
            from ..embedding.encoder import Encoder

            revision = self.manifest.model.revision if self.manifest else None
            encoder = Encoder.load(
                self.model,
                self.options.device,
                revision=revision,
                fp32=self.options.fp32,
                precision=self.options.precision,
                runtime=self.options.runtime,
            )
            if self.manifest is not None:
                manifests.check_model(encoder, self.manifest, self.model, self.location)
            self._encoder = encoder
        return self._encoder

    def loaded_encoder(self) -> Encoder | None:
        """The embedding pipeline if it is loaded, else None (loads nothing)."""
        return self._encoder

    def reranker(self, name: str) -> Reranker:
        """The cross-encoder ``name``, loaded on first use on the encoder's device."""
        if name not in self._rerankers:
            from ..embedding.reranker import Reranker

            self._rerankers[name] = Reranker.load(
                name,
                self.options.device,
                fp32=self.options.fp32,
                precision=self.options.precision,
                runtime=self.options.runtime,
            )
        return self._rerankers[name]

    def share_encoder(self, other: Backend) -> None:
        """Use ``other``'s loaded models, if any (another backend on the same index)."""
        self._encoder = other._encoder
        self._rerankers = other._rerankers

    def plan_manifest(self) -> Manifest:
        """The manifest a new index will get; checks the options before anything is written."""
        return manifests.plan(self.encoder(), self.options.chunking, self.options.index_type)

    def require_manifest(self) -> Manifest:
        """The manifest; IndexNotFoundError where there is no index yet."""
        if self.manifest is None:
            raise IndexNotFoundError(f"No index at {self.location}; run 'semsearch ingest DIR' first")
        return self.manifest

    # -- opening and writing ---------------------------------------------------------------------

    @abstractmethod
    def open(self) -> None:
        """(Re)read the index: its manifest, checked against the options."""

    @abstractmethod
    def release(self) -> None:
        """Let go of connections and files; the backend can be opened again."""

    @abstractmethod
    def follow(self) -> None:
        """Catch up with changes made by other processes (a reindex, an index created since)."""

    @abstractmethod
    def lock(self) -> AbstractContextManager[None]:
        """Be the writer inside the block, as far as the backend needs one (re-entrant)."""

    @abstractmethod
    def create(self) -> None:
        """Write a new index's manifest (planned from the options, or already set) if it has none."""

    @abstractmethod
    def reading(self) -> AbstractContextManager[None]:
        """Read one consistent state inside the block, as far as the backend can."""

    # -- the documents ledger and staged work ---------------------------------------------------

    @abstractmethod
    def documents(self) -> dict[str, Document]:
        """Every indexed document, by path."""

    @abstractmethod
    def documents_in(self, folders: Sequence[Path], files: Sequence[Path] = ()) -> dict[str, Document]:
        """Indexed documents by path: those at or inside any of ``folders`` and those at one of
        ``files`` (exactly); none when both are empty. An ingest removes only from this scope."""

    @abstractmethod
    def find_content(self, content_hash: str, chunks: Sequence[Chunk]) -> tuple[list[Chunk], np.ndarray] | None:
        """The chunks and vectors of an indexed document with this content cut into ``chunks``
        (``placed_alike``), if there is one."""

    @abstractmethod
    def staged(self, content_hash: str) -> dict[int, tuple[int, int, np.ndarray]]:
        """The staged chunks of this content: seq -> (start, end, vector)."""

    @abstractmethod
    def staged_files(self) -> dict[str, set[str]]:
        """Paths with staged chunks -> the content hashes staged under them."""

    @abstractmethod
    def unstage(self, content_hashes: Sequence[str]) -> None:
        """Drop staged chunks of these contents."""

    @abstractmethod
    def commit(self, published: Sequence[Published], staged: Sequence[Staged]) -> None:
        """Publish each document whole (replacing its earlier version) and keep ``staged``; the
        staged work of the published contents is dropped."""

    @abstractmethod
    def delete(self, paths: Sequence[str]) -> int:
        """Take documents out; how many chunks went."""

    @abstractmethod
    def chunk_count(self) -> int:
        """Chunks of the published documents."""

    def own_paths(self) -> list[Path]:
        """Files and folders of the index itself, never to be ingested."""
        return []

    def save(self) -> None:  # noqa: B027 - a backend with nothing cached has nothing to save
        """Save what the backend caches (a vector file) at the end of a write or a search."""

    # -- searching -------------------------------------------------------------------------------

    @abstractmethod
    def dense(self, embedded: np.ndarray, depth: int, where: Where | None, base: str) -> list[Candidates]:
        """The ``depth`` chunks nearest each embedded query by cosine, among those ``where`` lets
        through (relative patterns taken from ``base``)."""

    @abstractmethod
    def lexical(self, text: str, depth: int, where: Where | None, base: str) -> Candidates:
        """The ``depth`` chunks best matching the query's terms by BM25, among those ``where``
        lets through."""

    @abstractmethod
    def chunks(self, ids: Sequence[int]) -> Mapping[int, ChunkRow]:
        """Chunk rows with their document's path, by id."""

    @abstractmethod
    def neighbours(self, windows: Sequence[tuple[int, int, int]]) -> list[ChunkRow]:
        """The chunk rows of each (document id, first seq, last seq) window, in source order."""

    @abstractmethod
    def passes(self, where: Where, base: str) -> bool:
        """Whether any indexed document passes ``where``."""

    @abstractmethod
    def suffixes(self) -> list[str]:
        """The file types indexed (suffixes without the dot), sorted."""

    # -- looking after it ------------------------------------------------------------------------

    @abstractmethod
    def check(self) -> list[Check]:
        """Every invariant of the index."""

    @abstractmethod
    def repair(self) -> list[Check]:
        """Mend what can be mended from the stored data, then ``check``."""

    @abstractmethod
    def info(self) -> IndexInfo:
        """What the index holds and how it is stored."""

    @abstractmethod
    def rebuild(self, options: Options, chunking: ChunkSettings | None) -> Backend:
        """A new, empty copy of this index beside it for a reindex with ``options`` (or the
        unfinished one of an earlier reindex with the same model and chunking, to resume);
        writable while this backend holds its lock."""

    @abstractmethod
    def switch_to(self, new: Backend) -> None:
        """Make the rebuilt copy ``new`` the index, at once for every reader; drop the old data
        and take over ``new``'s."""

    @abstractmethod
    def discard(self, new: Backend) -> None:
        """Drop an unfinished rebuilt copy."""

    @abstractmethod
    def export(self, paths: Sequence[str]) -> Iterator[Published]:
        """The published documents at ``paths`` with their chunks and stored vectors."""


def describe_info(
    backend: Backend, path: str, counts: tuple[int, int], structure: str, device: str, size: int
) -> IndexInfo:
    """An ``IndexInfo`` from a backend's manifest and what it counts: (documents, chunks)."""
    manifest = backend.require_manifest()
    model = manifest.model
    documents, chunks = counts
    encoder = backend.loaded_encoder()
    if encoder is not None:
        runs_with = encoder.choice.describe()
    else:
        from ..embedding.precision import choose

        options = backend.options
        try:
            runs_with = choose(
                options.device, options.runtime, "fp32" if options.fp32 else options.precision
            ).describe()
        except SemsearchError as exc:
            runs_with = f"- ({exc})"
    return IndexInfo(
        path=path,
        model=model.model,
        revision=model.revision,
        dimension=model.dimension,
        pooling=model.pooling,
        normalize=model.normalize,
        max_seq_length=model.max_seq_length,
        query_prompt=model.query_prompt,
        document_prompt=model.document_prompt,
        chunk_tokens=manifest.chunking.chunk_tokens,
        overlap_tokens=manifest.chunking.overlap_tokens,
        documents=documents,
        chunks=chunks,
        index_type=structure,
        index_device=device,
        embedded_with=f"{model.runtime} {model.precision}" if model.runtime else None,
        runs_with=runs_with,
        size_bytes=size,
        semsearch_version=manifest.semsearch_version,
    )
