"""Reading one file safely: its bytes (never blocking on a FIFO, checked against the folders
it may come from), their text encoding, and why a file could not be read."""

from __future__ import annotations

import codecs
import errno
import hashlib
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

_SNIFF = 8192  # bytes looked at to tell binary from text
NOT_REGULAR = "not a regular file"
CHANGED = "changed while being read; ingest it again"
OUTSIDE = "outside the folders that may be ingested"
HARD_LINK = "a file with other hard links, which may lie outside the folders that may be ingested"


class UnreadableError(ValueError):
    "A file semsearch passes over; the message says why"


class DecodeError(UnreadableError):
    "The bytes are not text in any encoding semsearch reads"


class OutsideError(UnreadableError):
    "A file that, opened, is not within the folders that may be read"


def is_within(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (as strings: resolve links first)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def os_error_reason(exc: OSError, path: Path) -> str:
    """Why ``path`` could not be read, in a few words."""
    if exc.errno == errno.ELOOP:
        return "symbolic-link loop"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "dangling symbolic link" if os.path.islink(path) else "vanished while reading"
    return f"cannot read: {exc.strerror or exc}"


def human_size(size: int) -> str:
    """A byte count in decimal units: '512 bytes', '20 MB', '104.9 MB'."""
    value, units = float(size), ("bytes", "kB", "MB", "GB", "TB")
    for unit in units:
        if value < 1000 or unit == units[-1]:
            break
        value /= 1000
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"


def too_large(size: int, limit: int) -> str:
    return f"larger than the {human_size(limit)} limit (size {human_size(size)})"


def read_bytes(path: Path, limit: int | None = None, within: Sequence[str] = ()) -> tuple[bytes, str]:
    """A regular file's bytes and their sha256, reading at most ``limit`` bytes.

    Raises UnreadableError for a file that is not a regular one (opened without blocking, so a
    FIFO put in its place is refused, not waited on) or that holds more than ``limit`` bytes.
    With ``within`` (real paths of folders), the file opened is checked, by its descriptor,
    to lie within them, so a link swapped in after the walk cannot lead out; a file with
    other hard links is refused too (they may lie outside): OutsideError.
    """
    with open(path, "rb", opener=_open_nonblocking) as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableError(NOT_REGULAR)
        if within:
            _check_opened(file.fileno(), info, path, within)
        data = file.read() if limit is None else file.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise UnreadableError(too_large(max(len(data), info.st_size), limit))
    return data, hashlib.sha256(data).hexdigest()


def check_file(path: Path, within: Sequence[str]) -> None:
    """Open ``path`` (without blocking) and check, by its descriptor, that it lies within
    ``within`` and has no other hard links; OutsideError if not."""
    with open(path, "rb", opener=_open_nonblocking) as file:
        _check_opened(file.fileno(), os.fstat(file.fileno()), path, within)


def _check_opened(fd: int, info: os.stat_result, path: Path, within: Sequence[str]) -> None:
    real = _opened_path(fd)
    if real is None:  # no way to ask the descriptor: the path, resolved, must be the same file
        real = os.path.realpath(path)
        again = os.stat(real)
        if (again.st_dev, again.st_ino) != (info.st_dev, info.st_ino):
            raise OutsideError(CHANGED)
    if not any(is_within(real, top) for top in within):
        raise OutsideError(OUTSIDE)
    if info.st_nlink > 1:
        raise OutsideError(HARD_LINK)


def _opened_path(fd: int) -> str | None:
    """The real path of the file open on ``fd``, from the kernel; None where it cannot say."""
    try:
        if sys.platform.startswith("linux"):
            return os.readlink(f"/proc/self/fd/{fd}")
        if sys.platform == "darwin":
            import fcntl

            name = fcntl.fcntl(fd, 50, b"\0" * 1024)  # F_GETPATH
            return os.fsdecode(name.rstrip(b"\0"))
    except OSError:
        return None
    return None


def _open_nonblocking(path: str, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def decode(data: bytes) -> tuple[str, str]:
    """Decode text bytes, detecting UTF-8 (BOM or not), UTF-16 with BOM, GB18030/GBK and Big5.

    Returns (text, encoding name). Raises DecodeError for binary or undecodable bytes.
    """
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError as exc:
                raise DecodeError(f"starts with a {encoding} byte-order mark but is not {encoding}") from exc
    if b"\x00" in data[:_SNIFF]:
        raise DecodeError("binary file")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    decoded = {}
    for encoding in ("gb18030", "big5"):
        try:
            decoded[encoding] = data.decode(encoding)
        except UnicodeDecodeError:
            continue
    if not decoded:
        raise DecodeError("not valid UTF-8, UTF-16, GB18030/GBK or Big5 text")
    # GB18030 accepts almost any byte string, Big5 text included, and short GBK text is often
    # valid Big5: prefer the reading made of that encoding's frequent characters (ties: GBK)
    encoding = max(decoded, key=lambda e: (_frequent_share(decoded[e], e), e == "gb18030"))
    return decoded[encoding], encoding


# Each encoding's block of frequent characters and punctuation, as two-byte codes:
# GB2312 level-1 hanzi and symbols; Big5 level-1 hanzi and symbols.
_FREQUENT = {
    "gb18030": ((0xB0A1, 0xD7FE), (0xA1A1, 0xA9FE)),
    "big5": ((0xA440, 0xC67E), (0xA140, 0xA3BF)),
}


def _frequent_share(text: str, encoding: str) -> float:
    """The share of non-ASCII characters of ``text`` in ``encoding``'s frequent block."""
    total = frequent = 0
    for char in text:
        if char < "\x80":
            continue
        total += 1
        code = char.encode(encoding)
        if len(code) == 2:
            value = int.from_bytes(code, "big")
            frequent += any(low <= value <= high for low, high in _FREQUENT[encoding])
    return frequent / total if total else 0.0
