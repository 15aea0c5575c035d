"""One source file -> the document row and chunks to embed, or why it was passed over.

Reads the file (the only I/O here); decides unchanged by size and mtime, then by content hash;
decodes and chunks. Knows nothing of the store, the vectors or the model beyond a tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .chunking import Chunk, TokenSpans, chunk_text
from .config import ChunkSettings
from .sources import DecodeError, Skipped, decode, read_bytes


@dataclass(frozen=True)
class Prepared:
    """A file to embed: its ``documents`` row and its chunks."""

    document: dict[str, Any]
    chunks: list[Chunk]
    is_update: bool  # the path was indexed before, with other content


class Unchanged:
    "The indexed copy of the file is current"


UNCHANGED = Unchanged()


def prepare(
    path: Path,
    known: dict[str, Any] | None,
    token_spans: TokenSpans,
    settings: ChunkSettings,
    max_tokens: int,
) -> Prepared | Unchanged | Skipped:
    """Prepare ``path``; ``known`` is its current ``documents`` row, if any."""
    try:
        stat = path.stat()
        if known and known["size"] == stat.st_size and known["mtime"] == stat.st_mtime:
            return UNCHANGED
        data, digest = read_bytes(path)
        if known and known["content_hash"] == digest:
            return UNCHANGED
        text, encoding = decode(data)
    except (OSError, DecodeError) as exc:
        return Skipped(str(path), _reason(exc))
    chunks = chunk_text(text, token_spans, settings.chunk_tokens, settings.overlap_tokens, max_tokens=max_tokens)
    if not chunks:
        return Skipped(str(path), "empty or only white space")
    document = {
        "path": str(path),
        "content_hash": digest,
        "size": stat.st_size,
        "mtime": stat.st_mtime,
        "encoding": encoding,
    }
    return Prepared(document, chunks, is_update=known is not None)


def _reason(exc: OSError | DecodeError) -> str:
    if isinstance(exc, DecodeError):
        return str(exc)
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "vanished while reading"
    return f"cannot read: {exc.strerror or exc}"
