"""The rows the store hands out, typed, and how paths are kept: text, or raw bytes for a name
that is not valid UTF-8."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ChunkRow:
    """A stored chunk with its document's path: ``text == file_text[start:end]``, ``line``
    1-based, ``seq`` its place in its document."""

    id: int
    text: str
    start: int
    end: int
    line: int
    page: int | None
    heading: str | None
    document_id: int
    seq: int
    path: str


def stored(path: str) -> str | bytes:
    """How a path is kept: as text, or, for a name that is not valid UTF-8 (its undecodable bytes
    held as lone surrogates, Python's surrogateescape), as its raw bytes in a BLOB: lossless."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path)


def loaded(value: str | bytes) -> str:
    """A stored path back as the str the file system gave."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def prefix_condition(column: str, folder: str) -> tuple[str, list[Any]]:
    """SQL for "``column`` (a stored path) lies under ``folder``": compared as bytes, so text and
    BLOB paths alike."""
    prefix = os.fsencode(folder.rstrip("/") + "/")
    return f"substr(CAST({column} AS BLOB), 1, ?) = ?", [len(prefix), prefix]
