"""A long-lived index behind a server: queries batched onto the encoder, ingests beside them.

One thread owns the search handle. Requests queue up while it works, and it answers everything
queued in one ``Index.run``, so concurrent queries are embedded in one batch. Ingests run one at a time in a
thread of their own, on another handle sharing the loaded model; the search handle sees each
batch they commit (see engine.py on readers and writers). Knows nothing of HTTP.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from ..documents.reading import is_within
from ..errors import IndexLockedError, InvalidOptionError, PathNotAllowedError, SemsearchError
from ..index import Index
from ..index.watcher import Burst, WatchStatus, rounds
from ..index.watching import DEBOUNCE_MS, Round, one_round, watched
from ..query import DEFAULT_RERANKER, Query
from ..results import Hit, IngestReport

T = TypeVar("T")
MAX_BATCH = 64  # queries embedded together at most


@dataclass(frozen=True)
class Answer:
    """The hits of each query of a request, the index's model, and notes on the search."""

    hits: list[list[Hit]]
    model: str
    notes: list[str]


@dataclass(frozen=True)
class IngestStatus:
    """The last ingest this service started: ``running``, ``done`` (with its report) or
    ``failed`` (with the error)."""

    state: Literal["running", "done", "failed"]
    paths: list[str]
    started: float
    finished: float | None = None
    report: IngestReport | None = None
    error: BaseException | None = None


@dataclass
class _Search:
    queries: list[Query]
    future: Future[Answer] = field(default_factory=Future)


@dataclass(frozen=True)
class Embedded:
    """The vectors of an embedding request (as ``Encoder.encode`` gives them), the tokens the
    model read for each text, and the model's name."""

    vectors: np.ndarray
    tokens: list[int]
    model: str


@dataclass
class _Embed:
    texts: list[str]
    future: Future[Embedded] = field(default_factory=Future)


@dataclass
class _Call:
    work: Callable[[Index], Any]
    future: Future[Any] = field(default_factory=Future)


class Service:
    """An index opened once (``opener`` runs in the search thread) and kept for many requests.

    ``roots`` are the folders ``ingest`` may read; with none, ingest is refused. Relative paths,
    in an ingest or a search's filter, are taken from the first root. ``max_batch``
    bounds the queries embedded together (1: none batched). ``rerankers`` are the cross-encoders
    a search may ask for (none: reranking is refused), each loaded on first use.
    """

    def __init__(
        self,
        opener: Callable[[], Index],
        roots: Sequence[str | os.PathLike[str]] = (),
        max_batch: int = MAX_BATCH,
        rerankers: Sequence[str] = (DEFAULT_RERANKER,),
    ) -> None:
        self.rerankers = tuple(rerankers)
        self.roots = tuple(Path(os.path.realpath(r)) for r in roots)
        self.max_batch = max_batch
        self.base = self.roots[0] if self.roots else None  # relative paths are taken from here
        self._opener = opener
        self._queue: queue.Queue[_Search | _Embed | _Call | None] = queue.Queue()
        self._index: Index | None = None
        self._ingesting = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="semsearch-search", daemon=True)
        self.batches: list[int] = []  # queries in each batch embedded together (the last 1,000)
        self.last_ingest: IngestStatus | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._watch_status: WatchStatus | None = None

    def start(self) -> Service:
        """Open the index and load its model; raises what opening raised."""
        ready: Future[None] = Future()
        self._thread.start()
        self._queue.put(_Call(lambda index: None, ready))  # runs once the index is open
        ready.result()
        return self

    def stop(self) -> None:
        """Stop the watch, if any (a round under way is left to end with the process: an
        ingest is safe to stop anywhere), then the search thread."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        self._queue.put(None)
        self._thread.join(timeout=10)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def backlog(self) -> int:
        """Requests waiting for the search thread."""
        return self._queue.qsize()

    def search(self, queries: list[Query]) -> Future[Answer]:
        """Answer ``queries`` (each checked when it was made, so one bad request never fails a
        batch). Raises InvalidOptionError for a reranker this server does not offer."""
        for query in queries:
            if query.rerank is not None and query.rerank not in self.rerankers:
                offered = ", ".join(self.rerankers) or "none (start it with --rerank-model)"
                raise InvalidOptionError(f"This server does not rerank with {query.rerank!r}; it offers: {offered}")
        request = _Search(queries)
        self._queue.put(request)
        return request.future

    def embed(self, texts: list[str]) -> Future[Embedded]:
        """Embed ``texts`` as ``Encoder.encode`` does (the model's default prompt, if any), in
        the search thread's next batch: the texts of every embedding request in it go through
        the model together."""
        request = _Embed(list(texts))
        self._queue.put(request)
        return request.future

    def call(self, work: Callable[[Index], T]) -> Future[T]:
        """Run ``work`` on the search handle, in its thread."""
        request = _Call(work)
        self._queue.put(request)
        return request.future

    def ingest(self, paths: Sequence[str], exclude: Sequence[str] = ()) -> Future[IngestReport]:
        """Ingest ``paths`` (each within a root; relative ones taken from the first root) in a
        thread of its own. Raises PathNotAllowedError, or IndexLockedError while one runs."""
        targets = self.confine(paths)
        if not self._ingesting.acquire(blocking=False):
            raise IndexLockedError("An ingest is already running; try again when it has finished")
        future: Future[IngestReport] = Future()
        started = self._started(targets)  # before the answer: GET /ingest says it runs

        def work() -> None:
            try:
                ingest = lambda index: index.ingest(targets, exclude=exclude, within=self.roots)  # noqa: E731
                _settle(future, lambda: self._ingest(targets, ingest, started))
            finally:
                self._ingesting.release()

        threading.Thread(target=work, name="semsearch-ingest", daemon=True).start()
        return future

    def watch(
        self,
        paths: Sequence[str | os.PathLike[str]],
        on_round: Callable[[Round], None],
        *,
        debounce_ms: int = DEBOUNCE_MS,
        **options: Any,
    ) -> None:
        """Keep the index in step with ``paths`` (the operator's: not confined to the roots) in
        a thread of its own, as ``semsearch watch`` does, with ``Index.ingest``'s ``options``.
        Its rounds take turns with POST /ingest, show in ``last_ingest`` and are handed to
        ``on_round``; ``watch_state`` says how it is doing. Raises SourceNotFoundError for a path
        that does not exist."""
        roots = watched(paths)
        own = self.call(lambda index: index.handle.own_paths()).result()
        status = self._watch_status = WatchStatus(roots)

        def one(burst: Burst) -> Round:
            with self._ingesting:
                try:
                    return one_round(
                        burst,
                        roots,
                        lambda existing: self._ingest(existing, lambda index: index.ingest(existing, **options)),
                        lambda gone: (
                            self._ingest(gone, lambda index: index.remove(gone, missing_ok=True)).files_removed
                        ),
                    )
                except SemsearchError as exc:  # the server goes on; the next change tries again
                    return Round(burst.changes, error=exc, note=burst.note)

        def run() -> None:
            try:
                for burst in rounds(roots, own=own, debounce_ms=debounce_ms, stop=self._stopping, status=status):
                    try:
                        on_round(one(burst))
                    except Exception:
                        traceback.print_exc()  # a bug, in the server's log; the watch goes on
            except SemsearchError as exc:  # WatchError: it gave up, and says so in /health
                print(f"watch: {exc}", file=sys.stderr, flush=True)
            except BaseException as exc:  # a bug: the watch is down, and /health says so
                status.stop(f"The watch stopped: {type(exc).__name__}: {exc}")
                traceback.print_exc()

        self._watcher = threading.Thread(target=run, name="semsearch-watch", daemon=True)
        self._watcher.start()

    def watch_state(self) -> dict[str, Any] | None:
        """How the watch is doing (``WatchStatus.snapshot``); None when nothing is watched."""
        status, thread = self._watch_status, self._watcher
        if status is None:
            return None
        if thread is not None and not thread.is_alive() and not self._stopping.is_set():
            state = status.snapshot()
            if state["state"] != "stopped":  # ended without saying why: never a silent stop
                status.stop("The watch stopped")
        return status.snapshot()

    def _started(self, targets: Sequence[Path]) -> IngestStatus:
        self.last_ingest = IngestStatus("running", [str(t) for t in targets], time.time())
        return self.last_ingest

    def _ingest(self, targets: Sequence[Path], work: Callable[[Index], T], started: IngestStatus | None = None) -> T:
        """Run a write on a handle of its own (sharing the model), recorded as the last
        ingest. Hold ``_ingesting``."""
        started = started or self._started(targets)
        try:
            handle = self._require_index().reopen()
            try:
                done = work(handle)
            finally:
                handle.close()
        except BaseException as exc:
            self.last_ingest = replace(started, state="failed", finished=time.time(), error=exc)
            raise
        report = done if isinstance(done, IngestReport) else None
        self.last_ingest = replace(started, state="done", finished=time.time(), report=report)
        return done

    def confine(self, paths: Sequence[str]) -> list[Path]:
        """``paths`` as real paths, each within a root; PathNotAllowedError for any that is not,
        InvalidOptionError for one that cannot be a path (a NUL byte)."""
        if not self.roots:
            raise PathNotAllowedError("This server ingests nothing; start it with --root FOLDER to allow ingest")
        targets = []
        for given in paths:
            if "\x00" in given:  # no path holds one (os.path.realpath would raise ValueError)
                raise InvalidOptionError(f"{given!r} holds a NUL byte, which no file name can")
            real = Path(os.path.realpath(self.roots[0] / os.path.expanduser(given)))
            if not any(is_within(str(real), str(root)) for root in self.roots):
                raise PathNotAllowedError(f"{given} is outside the folders this server may ingest")
            targets.append(real)
        return targets

    def _require_index(self) -> Index:
        if self._index is None:
            raise SemsearchError("The index is not open")
        return self._index

    def _serve(self) -> None:
        try:
            self._index = self._opener()
            _ = self._index.encoder  # load the model now, not on the first query
        except BaseException as exc:
            first = self._queue.get()
            if first is not None:
                first.future.set_exception(exc)
            return
        try:
            while (batch := self._next_batch()) is not None:
                self._answer(batch)
        finally:
            self._index.close()

    def _next_batch(self) -> list[_Search | _Embed | _Call] | None:
        """What is queued: at least one request (waiting for it), at most ``max_batch`` queries."""
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        size = _size(first)
        while size < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # stop after this batch
                break
            batch.append(item)
            size += _size(item)
        return batch

    def _answer(self, batch: list[_Search | _Embed | _Call]) -> None:
        index = self._require_index()
        searches = [r for r in batch if isinstance(r, _Search) and r.future.set_running_or_notify_cancel()]
        if searches:
            self.batches = [*self.batches[-999:], sum(len(r.queries) for r in searches)]
            try:
                answers: list[list[Hit]] | None = index.run([q for r in searches for q in r.queries], base=self.base)
            except BaseException:
                answers = None  # one of them failed: answer each alone, so only it fails
            notes, index.notes = list(index.notes), []
            model = index.manifest.model.model if index.manifest else ""
            for request in searches:
                if answers is None:
                    answer = lambda r=request: Answer(index.run(r.queries, base=self.base), model, notes)  # noqa: E731
                    _settle(request.future, answer)  # type: ignore[misc]
                else:
                    request.future.set_result(Answer(answers[: len(request.queries)], model, notes))
                    answers = answers[len(request.queries) :]
        embeds = [r for r in batch if isinstance(r, _Embed) and r.future.set_running_or_notify_cancel()]
        if embeds:
            _settle_embeddings(index, embeds)
        for call in batch:
            if isinstance(call, _Call) and call.future.set_running_or_notify_cancel():
                _settle(call.future, lambda c=call: c.work(index))  # type: ignore[misc]


def _size(request: _Search | _Embed | _Call) -> int:
    """What a request counts towards a batch's ``max_batch``: its queries or its texts."""
    if isinstance(request, _Search):
        return len(request.queries)
    return len(request.texts) if isinstance(request, _Embed) else 0


def _settle_embeddings(index: Index, requests: list[_Embed]) -> None:
    """Embed the texts of ``requests`` together; if that fails, each request alone, so only a
    failing one fails."""
    encoder = index.encoder
    model = index.manifest.model.model if index.manifest else encoder.info.model

    def embed(texts: list[str]) -> Embedded:
        inputs = encoder.tokenize(texts)
        return Embedded(encoder.encode_tokenized(inputs), [len(i) for i in inputs], model)

    try:
        together = embed([text for r in requests for text in r.texts])
    except BaseException:
        for request in requests:
            _settle(request.future, lambda r=request: embed(r.texts))  # type: ignore[misc]
        return
    first = 0
    for request in requests:
        last = first + len(request.texts)
        request.future.set_result(Embedded(together.vectors[first:last], together.tokens[first:last], model))
        first = last


def _settle(future: Future[Any], work: Callable[[], Any]) -> None:
    try:
        future.set_result(work())
    except BaseException as exc:
        future.set_exception(exc)
