"""``Index``, the public face of an open index, and ``open_index``.

Each method is a thin call into the part that does the work: ``ingest`` and ``reindex`` (the
ingest modules), ``search_queries`` and ``passage`` (``searching``), ``remove``
(``maintenance``), ``info``, ``check`` and ``repair`` (the backend), all on one ``Backend``: a
local folder (``Handle``) or Milvus (``MilvusBackend``, chosen by a ``milvus://``,
``milvus+https://`` or ``milvus-lite:`` location). An ``Index`` may be shared between threads:
its calls run one at a time.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ..config import DEFAULT_MAX_FILE_BYTES, ChunkSettings, Manifest
from ..errors import IndexClosedError, IndexNotFoundError, InvalidOptionError
from ..query import DEFAULT_RERANKER, Query, option_of
from ..results import Check, Hit, IndexInfo, IngestReport, MigrateReport, Passage, RemoveReport
from ..storage.milvus.store import INDEX_TYPES as MILVUS_TYPES
from ..storage.vectors import INDEX_TYPES, choose
from . import maintenance, searching
from .backend import Backend, Options
from .handle import Handle

if TYPE_CHECKING:
    from ..documents.sharding import Shard
    from ..embedding.encoder import Encoder
    from ..embedding.reranker import Reranker

P = ParamSpec("P")
R = TypeVar("R")


def open_index(
    path: str | os.PathLike[str] = ".semsearch",
    model: str | os.PathLike[str] | None = None,
    *,
    device: str = "auto",
    fp32: bool = False,
    chunking: ChunkSettings | None = None,
    create: bool = True,
    wait: bool | float = False,
    index_type: str | None = None,
    precision: str = "auto",
    runtime: str = "auto",
) -> Index:
    """Open the index in folder ``path``, or prepare a new one there (written on first ingest).

    ``model`` (a hub id or a local sentence-transformers folder) is needed only for a new index;
    for an existing one it must be the model the index was built with. ``create=False`` raises
    IndexNotFoundError when there is no index yet. ``wait`` is what a write (ingest, remove,
    repair, check) does when another process is writing: fail at once (False), wait (True) or
    wait up to that many seconds.
    ``index_type`` (auto, flat, ivf or hnsw) sets the vector structure the next write saves;
    auto picks exact search while it is fast enough, then IVF.
    ``precision`` (auto, fp32, fp16, bf16, int8) and ``runtime`` (auto, torch, openvino) choose
    how the models run, as ``Encoder.load`` takes them; ``fp32`` is ``precision="fp32"``.
    """
    options = Options(_name(model), device, fp32, chunking, wait, index_type, precision, runtime)
    index = Index(backend_for(path, options))
    index.handle.open()
    if index.manifest is None and not create:
        index.close()
        raise IndexNotFoundError(f"No index at {path}; run 'semsearch ingest DIR' first")
    return index


def _name(model: str | os.PathLike[str] | None) -> str | None:
    """A model as the manifest records it: a hub id or a folder's path, as a string."""
    return None if model is None else os.fspath(model)


def migrate(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    progress: bool | None = False,
    index_type: str | None = None,
    wait: bool | float = False,
) -> MigrateReport:
    """Copy the index at ``source`` into ``target`` (a folder or a Milvus location; created with
    the source's model and chunking when new) using the vectors it stores: nothing is
    re-embedded. Resumable: a rerun copies only what the target lacks; documents no longer in
    the source are removed from the target. ``index_type`` sets the target's vector structure.
    SameIndexError when both name one index (a folder named two ways, a Lite file's collection)."""
    from .migration import check_distinct
    from .migration import migrate as copy

    check_distinct(source, target)
    with (
        open_index(source, create=False) as old,
        open_index(target, index_type=index_type, wait=wait) as new,
        old._mutex,
        new._mutex,
    ):
        return copy(old.handle, new.handle, progress)


def backend_for(path: str | os.PathLike[str], options: Options) -> Backend:
    """The backend a location names: a Milvus URI, or else a local index folder."""
    from .milvus import is_milvus

    if isinstance(path, str) and is_milvus(path):
        from .milvus import MilvusBackend

        return MilvusBackend(path, options)
    if options.index_type is not None and options.index_type not in INDEX_TYPES and options.index_type in MILVUS_TYPES:
        raise InvalidOptionError(
            f"{options.index_type} is a Milvus index type; a local index takes {', '.join(INDEX_TYPES)}"
        )
    if options.index_type is not None:
        choose(options.index_type, 0, 1, False)  # refuse an unknown type before anything is opened
    if os.path.exists(path) and not os.path.isdir(path):
        raise IndexNotFoundError(f"{path} is a file, not an index folder; give --index a folder")
    return Handle(Path(path), options)


def _serialized(method: Callable[P, R]) -> Callable[P, R]:
    """Run an ``Index`` method holding the index's mutex: one call at a time per index."""

    @functools.wraps(method)
    def locked(*args: P.args, **kwargs: P.kwargs) -> R:
        index: Index = args[0]  # type: ignore[assignment]
        with index._mutex:
            if index._closed and method.__name__ != "close":
                raise IndexClosedError(f"The index at {index.folder} was closed; open it again")
            return method(*args, **kwargs)

    return locked


class Index:
    """A semsearch index: documents, chunks and vectors in one folder. Use ``open_index``.

    An index may be used from several threads; its calls then run one at a time (an ingest
    holds it up to the end). For searches beside an ingest in one process, give each its own
    index (``reopen``).
    """

    def __init__(self, handle: Backend) -> None:
        self.handle = handle  # the backend the calls work on: its data, manifest and model
        self._mutex = threading.RLock()  # one call at a time: the SQLite connection is shared
        self._closed = False

    @property
    def location(self) -> str:
        """Where the index is: its folder, or its Milvus URI."""
        return self.handle.location

    @property
    def folder(self) -> Path:
        """The index folder: ``write.lock``, ``CURRENT`` and (until a reindex) the data. For a
        Milvus index, the folder of a Lite file, else the working directory."""
        return getattr(self.handle, "root", Path(self.handle.location))

    @property
    def data_folder(self) -> Path:
        """The folder of the database and vector files in use (a local index's)."""
        return getattr(self.handle, "data_folder", self.folder)

    data = data_folder  # an older name

    @property
    def manifest(self) -> Manifest | None:
        """What the index was built with; None before the first ingest."""
        return self.handle.manifest

    @property
    def notes(self) -> list[str]:
        """Things worth telling the user, such as a rebuilt vector index or a truncated query;
        the caller may clear the list once it has told them."""
        return self.handle.notes

    @notes.setter
    def notes(self, value: list[str]) -> None:
        self.handle.notes = value

    @property
    def encoder(self) -> Encoder:
        """The embedding pipeline, loaded on first use."""
        with self._mutex:
            return self.handle.encoder()

    def reranker(self, name: str = DEFAULT_RERANKER) -> Reranker:
        """The cross-encoder ``name``, loaded on first use (on this index's device) and kept."""
        with self._mutex:
            return self.handle.reranker(name)

    @_serialized
    def close(self) -> None:
        """Close the database; later calls raise IndexClosedError."""
        self.handle.release()
        self._closed = True

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reopen(self) -> Index:
        """Another index on the same folder, with these options and the loaded model: one runs one
        call at a time, so a thread that searches while another ingests needs its own."""
        other = Index(backend_for(self.handle.location, self.handle.options))
        other.handle.share_encoder(self.handle)
        other.handle.open()
        return other

    @_serialized
    def ingest(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        progress: bool | None = False,
        exclude: Sequence[str] = (),
        max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
        within: Sequence[str | os.PathLike[str]] = (),
        ignore_files: bool = True,
        shard: Shard | str | tuple[int, int] | None = None,
    ) -> IngestReport:
        """Add, update and remove documents so the index matches ``paths`` (files or folders).

        Unchanged files (same size and mtime, or same content) are not embedded again, nor are
        files whose content is indexed under another path (renamed or copied); files gone from
        an ingested folder are removed. ``exclude`` takes .gitignore-style patterns, applied after
        the ``.gitignore`` and ``.ignore`` files found in the folders (unless ``ignore_files`` is
        False); files over ``max_file_bytes`` are skipped. ``progress`` shows a bar on stderr
        (None: on a terminal only). Work is committed every 256 embedded chunks, a large file's
        included (it is published whole at its end); Ctrl-C stops at the next batch with
        ``Interrupted``, and the next run goes on from there. The model is loaded only when
        something needs embedding. With ``within``, nothing outside those folders is read,
        symbolic links included. With ``shard`` (``"I/N"``, ``(I, N)`` or a ``Shard``), only
        the files whose path hash falls in share I of N are added, updated or removed: N
        workers given shares 1 to N over the same folders ingest every file exactly once.
        """
        from .ingest import ingest

        return ingest(
            self.handle,
            paths,
            progress=progress,
            exclude=exclude,
            max_file_bytes=max_file_bytes,
            within=within,
            ignore_files=ignore_files,
            shard=shard,
        )

    @_serialized
    def reindex(
        self,
        paths: Sequence[str | os.PathLike[str]] = (),
        model: str | os.PathLike[str] | None = None,
        *,
        chunking: ChunkSettings | None = None,
        progress: bool | None = False,
        exclude: Sequence[str] = (),
        max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
        ignore_files: bool = True,
    ) -> IngestReport:
        """Re-embed every indexed document that still exists, plus ``paths``, with ``model``
        (default: the index's) into a new copy, then switch to it atomically. The old index
        answers queries until the switch; an interrupted reindex resumes when run again."""
        from .reindex import reindex

        return reindex(
            self.handle,
            paths,
            _name(model),
            chunking,
            progress=progress,
            exclude=exclude,
            max_file_bytes=max_file_bytes,
            ignore_files=ignore_files,
        )

    def search(self, query: str, k: int = 10, min_score: float | None = None, **options: Any) -> list[Hit]:
        """The ``k`` passages best matching ``query``, best first.

        ``options`` are ``Query``'s: ``mode`` is ``dense`` (embedding similarity, the default),
        ``lexical`` (BM25 over the chunks' terms) or ``hybrid`` (both, fused by reciprocal rank
        fusion with constant ``rrf_k``); ``min_score`` drops hits scoring below it, in the mode's
        own score; ``where`` (a ``Where``, or a dict of its fields) limits the search to some
        documents, still returning ``k`` hits while that many match; ``context`` widens each hit
        by that many chunks either side, hits whose passages touch in one document merged into
        one (so fewer than ``k`` may come back).
        """
        return self.search_many([query], k, min_score, **options)[0]

    def search_many(
        self, queries: list[str], k: int = 10, min_score: float | None = None, **options: Any
    ) -> list[list[Hit]]:
        """``search`` for several queries, embedded together. Queries longer than the model's
        limit are truncated for the dense search, with a note."""
        return self.search_queries([Query(text, k, min_score, **options) for text in queries])

    @_serialized
    def search_queries(
        self, queries: Sequence[Query], *, base: str | os.PathLike[str] | None = None
    ) -> list[list[Hit]]:
        """Answer several ``Query``s, each with its own options, embedding them all in one batch.
        Relative path filters are taken relative to ``base`` (default: the working directory)."""
        return searching.answer(self.handle, queries, base)

    run = search_queries  # an older name

    @_serialized
    def passage(self, chunk_id: int, context: int = 1, query: str | None = None) -> Passage:
        """The source text around one chunk (a hit's ``chunk_id``): it and up to ``context``
        chunks either side, within its document, with ``query``'s terms highlighted if given.
        Raises ChunkNotFoundError for an id the index does not hold (its file re-indexed since
        the search, say), InvalidOptionError for a context outside 0-20, as ``search``'s."""
        high = int(option_of(Query, "context").high or 0)
        if isinstance(context, bool) or not isinstance(context, int) or not 0 <= context <= high:
            raise InvalidOptionError(f"context must be a whole number from 0 to {high}, not {context!r}")
        return searching.passage(self.handle, int(chunk_id), context, query)

    @_serialized
    def remove(self, paths: Sequence[str | os.PathLike[str]], *, missing_ok: bool = False) -> RemoveReport:
        """Take the documents at ``paths`` (files, or everything under folders) out of the index.
        Raises SourceNotFoundError for a path with nothing indexed at it, unless ``missing_ok``
        (then such a path, or an index not made yet, removes nothing)."""
        return maintenance.remove(self.handle, paths, missing_ok)

    @_serialized
    def check(self) -> list[Check]:
        """Verify the index's invariants: SQLite sound, every chunk with exactly one vector in
        SQLite and in FAISS and the reverse, the FAISS file current and holding the stored
        vectors, no orphan documents. Waits for (or refuses during) a write, as ``wait`` says."""
        return self.handle.check()

    @_serialized
    def repair(self) -> list[Check]:
        """Rebuild the vector index from the vectors stored in SQLite, bring the lexical index in
        step with the chunks, then ``check``."""
        return self.handle.repair()

    @_serialized
    def info(self) -> IndexInfo:
        """What the index holds and how it is stored."""
        return self.handle.info()
