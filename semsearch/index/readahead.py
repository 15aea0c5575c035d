"""Reading and cutting the next files in a thread, ahead of the encoder."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from ..documents.prepare import Prepared, Unchanged
from ..errors import Interrupted
from ..results import Skipped

AHEAD_CHUNKS = 1024  # chunks read and cut ahead of the encoder, at most (four batches)


class ReadAhead:
    """``work(path)`` for each path, in order, done in a background thread ahead of the consumer,
    so reading and chunking the next files overlaps embedding and committing the last ones.

    At most ``AHEAD_CHUNKS`` prepared chunks (and at least one file) wait at a time. Iterating
    yields (path, result); an exception in the thread is raised there. When ``stop`` answers True
    iteration raises Interrupted; leaving the ``with`` block tells the thread to finish.
    """

    def __init__(
        self, work: Callable[[Path], Prepared | Unchanged | Skipped], paths: list[Path], stop: Callable[[], bool]
    ) -> None:
        self.work, self.paths, self.stop = work, paths, stop
        self.ready: deque[tuple[Path, Prepared | Unchanged | Skipped] | BaseException] = deque()
        self.waiting = 0  # chunks in self.ready
        self.changed = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._produce, name="semsearch-read-ahead", daemon=True)

    def __enter__(self) -> Iterator[tuple[Path, Prepared | Unchanged | Skipped]]:
        self.thread.start()
        return self._consume()

    def __exit__(self, *exc: object) -> None:
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def _produce(self) -> None:
        for path in self.paths:
            try:
                result: tuple[Path, Prepared | Unchanged | Skipped] | BaseException = (path, self.work(path))
            except BaseException as exc:  # handed to the consumer, which raises it
                result = exc
            size = len(result[1].chunks) if isinstance(result, tuple) and isinstance(result[1], Prepared) else 0
            with self.changed:
                while not self.closed and self.ready and self.waiting + size > AHEAD_CHUNKS:
                    self.changed.wait()
                if self.closed:
                    return
                self.ready.append(result)
                self.waiting += size
                self.changed.notify_all()
            if isinstance(result, BaseException) or self.stop():
                return

    def _consume(self) -> Iterator[tuple[Path, Prepared | Unchanged | Skipped]]:
        for _ in self.paths:
            with self.changed:
                while not self.ready and not self.stop():
                    self.changed.wait(timeout=0.1)
                if self.stop():
                    raise Interrupted("stopped")
                result = self.ready.popleft()
                if isinstance(result, tuple) and isinstance(result[1], Prepared):
                    self.waiting -= len(result[1].chunks)
                self.changed.notify_all()
            if isinstance(result, BaseException):
                raise result
            yield result
