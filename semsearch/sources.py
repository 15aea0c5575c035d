"""Finding and reading source files: walking folders, choosing types, decoding bytes."""

from __future__ import annotations

import codecs
import errno
import hashlib
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .config import SUFFIXES
from .errors import SourceNotFoundError

_SNIFF = 8192  # bytes looked at to tell binary from text
NOT_REGULAR = "not a regular file"
CHANGED = "changed while being read; ingest it again"
OUTSIDE = "outside the folders that may be ingested"


@dataclass(frozen=True)
class Skipped:
    """A file that was not ingested, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Walk:
    """What a walk over the ingest paths found."""

    files: list[Path]
    skipped: list[Skipped]
    folders: list[Path]  # the folders walked: documents gone from them are removed


class UnreadableError(ValueError):
    "A file semsearch passes over; the message says why"


class DecodeError(UnreadableError):
    "The bytes are not text in any encoding semsearch reads"


def walk(
    paths: Iterable[Path],
    exclude: Iterable[Path] = (),
    patterns: Sequence[str] = (),
    suffixes: tuple[str, ...] = SUFFIXES,
    within: Sequence[Path] = (),
) -> Walk:
    """Every file of a type semsearch reads under ``paths`` (absolute, sorted), and what was
    passed over and why.

    Hidden entries, the folders in ``exclude`` and whatever ``patterns`` match are left out
    silently. ``patterns`` are ``.gitignore`` lines, matched against each path relative to the
    folder walked: ``*.log`` or ``build`` at any depth, ``docs/old/**`` or ``/tmp`` from the
    top, ``name/`` folders only, ``!pattern`` to take back a path an earlier pattern left out
    (but not inside a folder left out: that is never entered). Matching is case-sensitive. A
    file named in ``paths`` is always taken. Symbolic links are followed; a folder reached
    twice (a link loop, or two links to one folder) is walked once and the repeat reported.
    With ``within``, a path (or link target) outside those folders is passed over, and why.
    """
    roots = [Path(os.path.abspath(p)) for p in paths]
    missing = [str(p) for p in roots if not os.path.lexists(p)]
    if missing:
        raise SourceNotFoundError(f"No such file or folder: {', '.join(missing)}")
    walker = _Walker([r for r in map(_compile, patterns) if r], _folder_keys(exclude))
    walker.within = tuple(os.path.realpath(p) for p in within)
    files: set[Path] = set()
    folders: list[Path] = []
    for root in roots:
        info = walker.stat(root)
        if info is None or not walker.inside(root):
            continue
        if stat.S_ISDIR(info.st_mode):
            folders.append(root)
            candidates = walker.files_under(root, info)
        elif stat.S_ISREG(info.st_mode):
            candidates = [root]
        else:
            walker.skip(root, NOT_REGULAR)
            continue
        for path in candidates:
            if path.suffix.lower() in suffixes:
                files.add(path)
            else:
                walker.skip(path, f"unsupported file type '{path.suffix or '(none)'}'")
    return Walk(files=sorted(files), skipped=walker.skipped, folders=folders)


def _folder_keys(paths: Iterable[Path]) -> set[tuple[int, int]]:
    infos = [os.stat(p) for p in paths if os.path.isdir(p)]
    return {(info.st_dev, info.st_ino) for info in infos}


@dataclass
class _Walker:
    rules: list[_Rule]
    excluded: set[tuple[int, int]]  # (st_dev, st_ino) of folders never to enter
    skipped: list[Skipped] = field(default_factory=list)
    reported: set[Path] = field(default_factory=set)  # roots may overlap: report each path once
    within: tuple[str, ...] = ()  # real paths of the only folders to read from, if any

    def inside(self, path: Path) -> bool:
        """Whether ``path``, links resolved, is within the allowed folders; if not, say so."""
        if not self.within:
            return True
        real = os.path.realpath(path)
        if any(is_within(real, top) for top in self.within):
            return True
        self.skip(path, OUTSIDE)
        return False

    def skip(self, path: Path, reason: str) -> None:
        if path not in self.reported:
            self.reported.add(path)
            self.skipped.append(Skipped(str(path), reason))

    def stat(self, path: Path, rel: str = "") -> os.stat_result | None:
        """os.stat of ``path``, links followed; on failure None, and why unless ``rel`` is left out."""
        try:
            return os.stat(path)
        except OSError as exc:
            if not (rel and self.ignored(rel, folder=False)):
                self.skip(path, os_error_reason(exc, path))
            return None

    def ignored(self, rel: str, folder: bool) -> bool:
        """Whether the patterns leave out ``rel``: the last one that matches decides."""
        out = False
        for rule in self.rules:
            if rule.negate == out and (folder or not rule.folders_only) and rule.regex.match(rel):
                out = not rule.negate
        return out

    def files_under(self, root: Path, info: os.stat_result) -> list[Path]:
        """Regular files under ``root``: real folders first, then those reached by a link."""
        found: list[Path] = []
        seen: set[tuple[int, int]] = set()
        real: list[_Folder] = [(root, "", (info.st_dev, info.st_ino), ())]
        linked: list[_Folder] = []
        while real or linked:
            folder, rel, key, above = real.pop() if real else linked.pop()
            if above and key in self.excluded:
                continue
            if key in seen:
                self.skip(folder, "symbolic-link loop" if key in above else "already walked via another path")
                continue
            seen.add(key)
            for path, child, sub_key, is_link in reversed(self._entries(folder, rel, found)):
                (linked if is_link else real).append((path, child, sub_key, (*above, key)))
        return found

    def _entries(self, folder: Path, rel: str, found: list[Path]) -> list[tuple[Path, str, tuple[int, int], bool]]:
        """Go through ``folder``: regular files into ``found``; the folders to enter returned."""
        try:
            with os.scandir(folder) as scan:
                entries = sorted((e.name, e.is_symlink()) for e in scan if not e.name.startswith("."))
        except OSError as exc:
            self.skip(folder, os_error_reason(exc, folder))
            return []
        folders = []
        for name, is_link in entries:
            path, child = folder / name, f"{rel}/{name}" if rel else name
            info = self.stat(path, child)
            if info is None or (is_link and not self.inside(path)):
                continue
            is_dir = stat.S_ISDIR(info.st_mode)
            if self.ignored(child, is_dir):
                continue
            if is_dir:
                folders.append((path, child, (info.st_dev, info.st_ino), is_link))
            elif stat.S_ISREG(info.st_mode):
                found.append(path)
            else:  # FIFOs, sockets, devices: opening a FIFO waits forever for a writer
                self.skip(path, NOT_REGULAR)
        return folders


# a folder to walk: (path, path relative to the root, (st_dev, st_ino), keys of the folders above)
_Folder = tuple[Path, str, tuple[int, int], tuple[tuple[int, int], ...]]


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    folders_only: bool
    negate: bool


def _compile(pattern: str) -> _Rule | None:
    """A ``.gitignore`` line as a regular expression over paths relative to the walked folder."""
    negate = pattern.startswith("!")
    body = pattern[negate:].strip()
    folders_only = body.endswith("/")
    body = body.rstrip("/")
    if not body or body.startswith("#"):
        return None
    # with a slash before the end it is anchored to the top; without, it matches at any depth
    prefix = "" if "/" in body else "(?:.*/)?"
    parts = body.lstrip("/").split("/")
    regex = prefix
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            regex += ".*" if last else "(?:.*/)?"
        else:
            regex += glob_component(part) + ("" if last else "/")
    return _Rule(re.compile(regex + r"\Z", re.DOTALL), folders_only, bool(negate))


def glob_component(part: str) -> str:
    """One path component of a pattern: ``*``, ``?``, ``[...]``, ``\\x``; nothing matches '/'."""
    out, i = [], 0
    while i < len(part):
        char, i = part[i], i + 1
        if char in "*?":
            out.append("[^/]*" if char == "*" else "[^/]")
        elif char == "\\" and i < len(part):
            out.append(re.escape(part[i]))
            i += 1
        elif char == "[" and (end := part.find("]", i + 1 + (part[i : i + 1] in ("!", "^")))) > 0:
            negate = part[i] in ("!", "^")
            body = "".join(c if c == "-" else re.escape(c) for c in part[i + negate : end])
            out.append(f"(?!/)[{'^' if negate else ''}{body}]")
            i = end + 1
        else:
            out.append(re.escape(char))
    return "".join(out)


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


def read_bytes(path: Path, limit: int | None = None) -> tuple[bytes, str]:
    """A regular file's bytes and their sha256, reading at most ``limit`` bytes.

    Raises UnreadableError for a file that is not a regular one (opened without blocking, so a
    FIFO put in its place is refused, not waited on) or that holds more than ``limit`` bytes.
    """
    with open(path, "rb", opener=_open_nonblocking) as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableError(NOT_REGULAR)
        data = file.read() if limit is None else file.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise UnreadableError(too_large(max(len(data), info.st_size), limit))
    return data, hashlib.sha256(data).hexdigest()


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
