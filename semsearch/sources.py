"""Finding and reading source files: walking folders, choosing types, decoding bytes."""

from __future__ import annotations

import codecs
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .config import TEXT_SUFFIXES
from .errors import SourceNotFoundError

_SNIFF = 8192  # bytes looked at to tell binary from text


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


class DecodeError(ValueError):
    "The bytes are not text in any encoding semsearch reads"


def walk(paths: Iterable[Path], exclude: Iterable[Path] = (), suffixes: tuple[str, ...] = TEXT_SUFFIXES) -> Walk:
    """Every text file under ``paths`` (absolute, sorted); hidden entries and ``exclude`` are passed over."""
    roots = [Path(os.path.abspath(p)) for p in paths]
    missing = [str(p) for p in roots if not p.exists()]
    if missing:
        raise SourceNotFoundError(f"No such file or folder: {', '.join(missing)}")
    excluded = {Path(os.path.abspath(p)) for p in exclude}
    files: set[Path] = set()
    skipped: list[Skipped] = []
    folders: list[Path] = []
    for root in roots:
        if root.is_dir():
            folders.append(root)
            candidates = _files_under(root, excluded)
        else:
            candidates = [root]
        for path in candidates:
            if path.suffix.lower() in suffixes:
                files.add(path)
            else:
                skipped.append(Skipped(str(path), f"unsupported file type '{path.suffix or '(none)'}'"))
    return Walk(files=sorted(files), skipped=skipped, folders=folders)


def _files_under(root: Path, excluded: set[Path]) -> list[Path]:
    found: list[Path] = []
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        # hidden folders (.git, .semsearch) and the index itself are never documents
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and here / d not in excluded)
        found.extend(here / n for n in sorted(names) if not n.startswith("."))
    return found


def read_bytes(path: Path) -> tuple[bytes, str]:
    """A file's bytes and their sha256."""
    data = path.read_bytes()
    return data, hashlib.sha256(data).hexdigest()


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
