"""What the library hands back: search hits and reports. Plain frozen dataclasses."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

UNSUPPORTED = "unsupported"  # Skipped.kind of a file of a type semsearch does not read
PROBLEM = "problem"  # Skipped.kind of a file semsearch reads but could not this time
REFUSED = "refused"  # Skipped.kind of a file outside the folders that may be read: never kept
EMPTY = "empty"  # Skipped.kind of a file read whole with no text in it: no indexed copy is kept


@dataclass(frozen=True)
class Skipped:
    """A file that was not ingested, and why; ``kind`` is ``unsupported`` for a type semsearch
    does not read (or reads only with an extra), ``problem`` for one it could not read this
    time (an indexed copy is kept), ``refused`` for one outside the folders it may read,
    ``empty`` for one read with no text in it (an indexed copy of earlier text is removed)."""

    path: str
    reason: str
    kind: str = PROBLEM


@dataclass(frozen=True)
class Hit:
    """One ranked passage: its ``score``, the passage ``text`` and where it is in ``source``.

    ``score`` is the search mode's: cosine similarity (dense), BM25 (lexical) or the reciprocal
    rank fusion score (hybrid); for a ``reranked`` hit it is the reranker's, and
    ``first_score`` keeps the mode's. ``matched`` says which searches found it: "dense", "lexical" or
    "dense+lexical". ``highlights`` are (start, end) spans of ``text`` where the query's terms
    occur, for lexical matches. ``page`` is the PDF page the passage starts on and ``heading``
    the headings it sits under ("Chapter > Section"), when the source has them. ``chunk_ids``
    are the chunks the passage is made of: this hit's alone, or with ``context`` its
    neighbours and any other hits merged in, in source order.
    """

    rank: int
    score: float
    text: str
    source: str
    line: int
    start: int
    end: int
    chunk_id: int
    matched: str = "dense"
    highlights: tuple[tuple[int, int], ...] = ()
    page: int | None = None
    heading: str | None = None
    chunk_ids: tuple[int, ...] = ()
    reranked: bool = False
    first_score: float | None = None  # the search mode's score, when reranked

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Passage:
    """The source text around one chunk: ``chunk_id`` with up to ``context`` chunks either side
    (``Index.passage``). The fields are a ``Hit``'s, without the ranking: ``text`` is
    ``file_text[start:end]`` of ``source``, from ``line`` (1-based; ``page`` and ``heading`` of
    its first chunk); ``chunk_ids`` the chunks it is made of, in source order; ``highlights``
    the (start, end) spans of ``text`` where a given query's terms occur."""

    chunk_id: int
    text: str
    source: str
    line: int
    start: int
    end: int
    page: int | None = None
    heading: str | None = None
    chunk_ids: tuple[int, ...] = ()
    highlights: tuple[tuple[int, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IngestReport:
    """What an ingest did."""

    files_added: int = 0
    files_updated: int = 0
    files_unchanged: int = 0
    files_removed: int = 0
    files_removed_excluded: int = 0  # of those removed: still on disk, now left out by a pattern or ignore file
    files_reused: int = 0  # of those added or updated: content found indexed elsewhere, not embedded
    chunks_embedded: int = 0  # embedded by this run, published or staged
    chunks_resumed: int = 0  # embedded by an earlier, interrupted run and taken from its staged work
    chunks_staged: int = 0  # of those embedded: kept for files not finished yet (after a stop)
    chunks_total: int = 0
    seconds: float = 0.0  # the whole ingest, loading the model included
    model_load_seconds: float = 0.0  # loading the model, when this ingest loaded it
    embedding_seconds: float = 0.0  # the model embedding chunks (reading, chunking and commits not included)
    engine: str = ""  # what ran the model, e.g. "openvino bf16 on cpu"; "" where no model was loaded
    conversion_seconds: float = 0.0  # of the load: converting the model for OpenVINO (once per model)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def chunks_per_second(self) -> float:
        """The embedding rate: chunks embedded per second of the model's embedding time."""
        return self.chunks_embedded / self.embedding_seconds if self.embedding_seconds else 0.0

    @property
    def files_skipped(self) -> int:
        return len(self.skipped)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["files_skipped"] = self.files_skipped
        data["chunks_per_second"] = round(self.chunks_per_second, 1)
        data["skipped"] = [asdict(s) for s in self.skipped]
        return data


@dataclass(frozen=True)
class RemoveReport:
    """What a remove took out of the index."""

    files_removed: int
    chunks_removed: int
    paths: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MigrateReport:
    """What a migration copied: documents and chunks (with their stored vectors, nothing
    re-embedded), those already in the target, those removed from it."""

    source: str
    target: str
    documents_copied: int = 0
    chunks_copied: int = 0
    documents_present: int = 0
    documents_removed: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Check:
    """One invariant of an index and whether it holds."""

    name: str
    ok: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IndexInfo:
    """A summary of an index, for ``semsearch info``."""

    path: str
    model: str
    revision: str | None
    dimension: int
    pooling: list[str]
    normalize: bool
    max_seq_length: int
    # put before queries and documents; None where not recorded (an index of an earlier
    # semsearch, which put the model's default prompt, usually none, before both)
    query_prompt: str | None
    document_prompt: str | None
    chunk_tokens: int
    overlap_tokens: int
    documents: int
    chunks: int
    index_type: str
    index_device: str
    # what embedded the index when it was made ("openvino bf16"; None: not recorded, made before
    # semsearch recorded it) and what this machine runs the model with now, unless told otherwise
    embedded_with: str | None
    runs_with: str
    size_bytes: int  # on disk; -1 where not known (a Milvus server)
    semsearch_version: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
