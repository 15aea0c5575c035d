"""The ingest's progress bar: chunks embedded against chunks to embed, files done beside it, and
the file being read, then the one being embedded with its chunks counted."""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

from ..config import tqdm_disable
from ..documents.prepare import Document

T = TypeVar("T")
FALLBACK_COLUMNS = 100  # the bar's width where the terminal says it has none
_NAME = 32  # at most this many characters of a file's name on the bar


class Progress:
    """The ingest's progress bar: chunks embedded against the chunks to embed, with the rate, the
    time left and the files done beside it, then what is going on: the file being read (a large
    file takes seconds to read before its chunks are known) and the file being embedded, with its
    chunks embedded so far against its own.

    The chunks of files read so far are known exactly; the rest are estimated from the bytes of
    the files still to read that may have changed (size or mtime differs from the indexed copy),
    at the chunks per byte seen so far, so the time left means something from the first file on.
    Files are read in a thread of their own: the bar is safe to tell from either.
    """

    def __init__(self, files: list[Path], known: dict[str, Document], progress: bool | None) -> None:
        from tqdm.auto import tqdm

        disable = tqdm_disable(progress)
        self.lock = threading.RLock()
        self.bar = tqdm(total=0, desc="Embedding", unit="chunk", disable=disable, ncols=_screen_size(None)[0])
        self.bar.dynamic_ncols = _screen_size  # followed as the window is resized
        self.files = len(files)
        self.done = 0
        self.queued = 0  # chunks to embed of the files read so far
        self.bytes_read = 0
        self.sizes = {} if self.bar.disable else _changed_sizes(files, known)
        self.bytes_left = sum(self.sizes.values())
        self.reading: str | None = None  # the name of the file being read
        self.embedding: deque[_Embedding] = deque()  # the files read with chunks to embed, in order
        self._show()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def showing(self, work: Callable[[Path], T]) -> Callable[[Path], T]:
        """``work`` (reading a file), with the file's name on the bar while it runs."""
        if self.bar.disable:
            return work

        def shown(path: Path) -> T:
            with self.lock:
                self.reading = _shown_name(path)
                self._show()
            try:
                return work(path)
            finally:
                with self.lock:
                    self.reading = None

        return shown

    def read(self, path: Path, chunks: int, done: bool) -> None:
        """A file came out of reading with ``chunks`` to embed (``done``: nothing more to do)."""
        with self.lock:
            size = self.sizes.pop(str(path), 0)
            self.bytes_left -= size
            self.bytes_read += size
            self.queued += chunks
            self.done += done
            if chunks and not self.bar.disable:
                self.embedding.append(_Embedding(str(path), _shown_name(path), chunks))
            self._show()

    def embedded(self, chunks: int, files: int) -> None:
        """``chunks`` more were embedded (in the order the files were read) and ``files`` more published."""
        with self.lock:
            self.done += files
            left = chunks
            while left and self.embedding:
                head = self.embedding[0]
                taken = min(left, head.chunks - head.embedded)
                head.embedded, left = head.embedded + taken, left - taken
                if head.embedded >= head.chunks:
                    self.embedding.popleft()
            self._show(chunks)

    def dropped(self, chunks: int, path: str | None = None) -> None:
        """A file (at ``path``) was dropped (vanished or changed since it was read) with ``chunks``
        of it never to be embedded."""
        with self.lock:
            self.queued -= chunks
            self.done += 1
            if path is not None:
                self.embedding = deque(file for file in self.embedding if file.path != path)
            self._show()

    def _show(self, embedded: int = 0) -> None:
        """Draw the bar, ``embedded`` more chunks done (counted here, after the words beside it
        are set, so no line shows the new count with the old words)."""
        if self.bar.disable:
            return
        rate = self.queued / self.bytes_read if self.bytes_read else 0.0
        self.bar.total = max(self.bar.n + embedded, self.queued + round(rate * self.bytes_left))
        doing = [f"files {self.done}/{self.files}"]
        if self.reading is not None:  # first: a slow read is what the encoder waits on
            doing.append(f"reading {self.reading}")
        if self.embedding:
            head = self.embedding[0]
            doing.append(f"{head.name} {head.embedded:,}/{head.chunks:,}")
        self.bar.set_postfix_str(", ".join(doing), refresh=False)
        if embedded:
            self.bar.update(embedded)  # tqdm's rate and time left count from here
        self.bar.refresh()


@dataclass
class _Embedding:
    """A file read, with chunks to embed: how many, and how many of them are embedded."""

    path: str
    name: str  # as shown
    chunks: int
    embedded: int = 0


def _shown_name(path: Path) -> str:
    """A file's name as the bar shows it: control, format and other unprintable characters (a
    name's undecodable bytes too) escaped, so a name can neither move the cursor nor read
    backwards; a long one shortened."""
    name = "".join(c if c.isprintable() else _escaped(c) for c in path.name)
    return name if len(name) <= _NAME else name[: _NAME - 1] + "…"


def _escaped(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, kept as a surrogate escape
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _screen_size(stream: IO[str] | None) -> tuple[int, int | None]:
    """tqdm's ``dynamic_ncols`` hook: the width to draw in (one less than the terminal's, as
    tqdm's own) and the rows. A terminal (a serial console, some CI runners, an editor's shell)
    may say it has 0 columns; tqdm then trims every line to -1 characters, which prints the line
    less its last character or, with a wide character such as a Chinese name in it, never
    returns. There the bar is ``FALLBACK_COLUMNS`` wide."""
    try:
        size = os.get_terminal_size((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):
        return FALLBACK_COLUMNS - 1, None
    columns = size.columns if size.columns > 1 else FALLBACK_COLUMNS
    return columns - 1, size.lines - 1 if size.lines > 1 else None


def _changed_sizes(files: list[Path], known: dict[str, Document]) -> dict[str, int]:
    """Sizes of the files whose size or mtime differ from their indexed copy (or that have none)."""
    sizes: dict[str, int] = {}
    for path in files:
        try:
            info = path.stat()
        except OSError:
            continue
        row = known.get(str(path))
        if row is None or (row.size, row.mtime) != (info.st_size, info.st_mtime):
            sizes[str(path)] = info.st_size
    return sizes
