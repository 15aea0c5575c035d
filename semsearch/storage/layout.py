"""Where an index keeps its files, and the atomic switch to a rebuilt copy.

An index folder holds ``write.lock`` and its data: ``semsearch.db`` plus ``vectors-<g>.faiss``.
The data lives in the folder itself until a ``--reindex``, which builds a complete copy in a
subfolder ``data-<n>`` and then names it in ``CURRENT`` (written to a temporary file, fsynced
and renamed, so readers find either the old data or the new, never a mix).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path

from ..errors import DiskFullError, IndexCorruptError

CURRENT = "CURRENT"
DATABASE = "semsearch.db"
_DATA = re.compile(r"^data-(\d+)$")
_ROOT_FILES = re.compile(
    r"^(semsearch\.db(-wal|-shm|-journal)?|vectors-\d+(-[0-9a-f]{16})?\.faiss|\.vectors-.*\.tmp\d+)$"
)


def data_folder(root: Path) -> Path:
    """The folder holding the index's current data."""
    try:
        fd = os.open(root / CURRENT, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block
    except FileNotFoundError:
        return root
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IndexCorruptError(f"{root / CURRENT} is not a regular file; delete it or rebuild the index")
        name = os.read(fd, 256).decode("utf-8", errors="replace").strip()
    finally:
        os.close(fd)
    if not _DATA.match(name):
        raise IndexCorruptError(f"{root / CURRENT} names {name!r}, not a data folder; delete it or rebuild the index")
    if not (root / name).is_dir():
        raise IndexCorruptError(
            f"{root / CURRENT} names the data folder {name}, which is missing; restore it from a backup, "
            "or delete the index folder and ingest again"
        )
    return root / name


def build_folder(root: Path) -> Path:
    """The folder for a rebuilt copy: one number past every data folder there."""
    numbers = [int(m.group(1)) for entry in _entries(root) if (m := _DATA.match(entry.name))]
    return root / f"data-{max(numbers, default=0) + 1}"


def pending_builds(root: Path) -> list[Path]:
    """Data folders that are not current: unfinished rebuilds, newest first."""
    current = data_folder(root)
    found = [entry for entry in _entries(root) if _DATA.match(entry.name) and entry != current]
    return sorted(found, key=lambda p: -int(p.name.split("-")[1]))


def publish(root: Path, folder: Path) -> None:
    """Make ``folder`` the current data, atomically."""
    temporary = root / f".{CURRENT}.tmp{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(folder.name + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, root / CURRENT)
    fsync_folder(root)


def discard(root: Path, folder: Path) -> None:
    """Delete a data folder that is no longer current (the index root: only its data files)."""
    if folder == root:
        for entry in _entries(root):
            if entry.is_file() and _ROOT_FILES.match(entry.name):
                entry.unlink(missing_ok=True)
    else:
        shutil.rmtree(folder, ignore_errors=True)


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable: the folder entry must reach the disk too."""
    if os.name == "nt":  # Windows cannot open a folder; NTFS journals the rename itself
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _entries(root: Path) -> list[Path]:
    try:
        return list(root.iterdir())
    except FileNotFoundError:
        return []


LOW_SPACE = 1_000_000  # bytes: below this, a failed write is put down to a full disk


def low_on_space(path: Path) -> bool:
    """Whether the disk holding ``path`` has (almost) no room left."""
    try:
        return shutil.disk_usage(path if path.is_dir() else path.parent).free < LOW_SPACE
    except OSError:
        return False


def disk_full(path: Path, detail: str) -> DiskFullError:
    """The error for a write that found no room on the disk holding ``path``."""
    try:
        free = f"{shutil.disk_usage(path if path.is_dir() else path.parent).free:,} bytes free"
    except OSError:
        free = "no room"
    return DiskFullError(f"The disk holding {path} is full ({free}; {detail}); free some space and run it again")
