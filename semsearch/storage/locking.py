"""The index's writer lock: one writer at a time, released by the OS when its process dies.

An advisory lock (``flock`` on POSIX, ``msvcrt.locking`` on Windows) on ``write.lock`` in the
index folder. Readers never take it; they only ask whether someone holds it. A ``kill -9``
leaves the file behind but not the lock, so there is nothing stale to clean up.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import time
from pathlib import Path
from types import TracebackType

from ..errors import IndexCorruptError, IndexLockedError, ReadOnlyIndexError

FILENAME = "write.lock"
_POLL = 0.1  # seconds between tries when waiting with a time limit


class WriteLock:
    """``with WriteLock(folder, wait):`` holds the index's writer lock inside the block.

    ``wait`` is False (fail at once if another process writes), True (wait as long as it
    takes) or a number of seconds.
    """

    def __init__(self, folder: Path, wait: bool | float = False) -> None:
        self.path = folder / FILENAME
        self.wait = wait
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = _open(self.path, os.O_RDWR | os.O_CREAT)
        deadline = None if self.wait is True else time.monotonic() + float(self.wait)
        try:
            while not _try_lock(fd):
                if deadline is not None and time.monotonic() >= deadline:
                    raise IndexLockedError(self._busy_message(), waitable=not self.wait)
                time.sleep(_POLL)
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    def _busy_message(self) -> str:
        pid = holder_pid(self.path.parent)
        who = f"process {pid}" if pid else "another process"
        message = f"The index at {self.path.parent} is being written by {who} (an ingest, remove or repair)"
        if self.wait:
            return f"{message}; gave up after waiting {float(self.wait):g} s"
        return f"{message}; try again when it is done"  # the CLI adds its --wait where the command has it

    def __enter__(self) -> WriteLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def is_locked(folder: Path) -> bool:
    """Whether some process holds the writer lock of the index in ``folder`` now."""
    path = folder / FILENAME
    try:
        fd = _open(path, os.O_RDONLY if sys.platform != "win32" else os.O_RDWR)
    except (OSError, IndexCorruptError):
        return False
    try:
        if _try_lock(fd, shared=True):
            _unlock(fd)
            return False
        return True
    finally:
        os.close(fd)


def _open(path: Path, flags: int) -> int:
    """The lock file, opened without blocking (a FIFO put in its place would wait for ever);
    IndexCorruptError when something else than a regular file has its name."""
    try:
        fd = os.open(path, flags | getattr(os, "O_NONBLOCK", 0), 0o644)
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM) and flags & os.O_CREAT:
            raise ReadOnlyIndexError(
                f"The index at {path.parent} is read-only ({exc.strerror}): searches work, writes need a writable copy"
            ) from None
        if not isinstance(exc, IsADirectoryError):
            raise
        raise IndexCorruptError(f"{path} is a folder, not a lock file; delete it (semsearch makes a new one)") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise IndexCorruptError(f"{path} is not a regular file; delete it (semsearch makes a new one)")
    return fd


def holder_pid(folder: Path) -> int | None:
    """The pid the current (or last) writer wrote into the lock file, if readable."""
    try:
        fd = _open(folder / FILENAME, os.O_RDONLY)
    except (OSError, IndexCorruptError):
        return None
    try:
        return int(os.read(fd, 64).decode("ascii", errors="replace").strip() or 0) or None
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int, shared: bool = False) -> bool:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int, shared: bool = False) -> bool:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
