"""One source file -> the document row and chunks to embed, or why it was passed over.

Reads the file (the only I/O here); decides unchanged by size and mtime, then by content hash;
decodes and chunks. Knows nothing of the store, the vectors or the model beyond a tokenizer.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .chunking import Chunk, TokenCounts, TokenSpans, chunk_text
from .config import ChunkSettings
from .sources import CHANGED, NOT_REGULAR, Skipped, UnreadableError, decode, os_error_reason, read_bytes, too_large


@dataclass(frozen=True)
class Prepared:
    """A file to embed: its ``documents`` row and its chunks."""

    document: dict[str, Any]
    chunks: list[Chunk]
    is_update: bool  # the path was indexed before, with other content
    inputs: list[Any] | None = None  # the chunks tokenized for the model, when done ahead


class Unchanged:
    "The indexed copy of the file is current"


UNCHANGED = Unchanged()


def prepare(
    path: Path,
    known: dict[str, Any] | None,
    token_spans: TokenSpans,
    settings: ChunkSettings,
    max_tokens: int,
    *,
    max_bytes: int | None = None,
    token_counts: TokenCounts | None = None,
) -> Prepared | Unchanged | Skipped:
    """Prepare ``path``; ``known`` is its current ``documents`` row, if any.

    A file that is not a regular one, is over ``max_bytes``, cannot be read, changes while it
    is read or is not text comes back as Skipped, with the reason.
    """
    try:
        loaded = _load(path, known, max_bytes)
    except UnreadableError as exc:  # decoding errors included
        return Skipped(str(path), str(exc))
    except OSError as exc:
        return Skipped(str(path), os_error_reason(exc, path))
    if isinstance(loaded, Unchanged):
        return loaded
    info, digest, text, encoding = loaded
    chunks = chunk_text(
        text,
        token_spans,
        settings.chunk_tokens,
        settings.overlap_tokens,
        max_tokens=max_tokens,
        token_counts=token_counts,
    )
    if not chunks:
        return Skipped(str(path), "empty or only white space")
    document = {
        "path": str(path),
        "content_hash": digest,
        "size": info.st_size,
        "mtime": info.st_mtime,
        "encoding": encoding,
    }
    return Prepared(document, chunks, is_update=known is not None)


def _load(
    path: Path, known: dict[str, Any] | None, max_bytes: int | None
) -> tuple[os.stat_result, str, str, str] | Unchanged:
    """The file's stat, sha256, text and encoding, or UNCHANGED; raises for a file to pass over.

    The bytes are dropped on return: only the text is held while it is chunked.
    """
    before = path.stat()
    if not stat.S_ISREG(before.st_mode):  # a FIFO would block the read forever
        raise UnreadableError(NOT_REGULAR)
    if known and known["size"] == before.st_size and known["mtime"] == before.st_mtime:
        return UNCHANGED
    if max_bytes is not None and before.st_size > max_bytes:
        raise UnreadableError(too_large(before.st_size, max_bytes))
    data, digest = read_bytes(path, max_bytes)
    after = path.stat()
    if len(data) != before.st_size or _version(after) != _version(before):
        raise UnreadableError(CHANGED)
    if known and known["content_hash"] == digest:
        return UNCHANGED
    return (before, digest, *decode(data))


def _version(info: os.stat_result) -> tuple[int, int, int, int]:
    return info.st_size, info.st_mtime_ns, info.st_ino, info.st_dev
