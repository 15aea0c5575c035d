"""The rows the Milvus backend writes and reads: chunks, ledger rows and removals, built from
and turned back into semsearch's own types."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...documents.chunking import Chunk
from ...documents.prepare import Document
from ...documents.terms import indexed
from ..rows import ChunkRow
from .expressions import loaded_path, stored_path, suffix_of
from .store import clip, stable_id


def chunk_rows(
    stored: str, version: int, document: Document, chunks: Sequence[Chunk], vectors: np.ndarray
) -> list[dict[str, Any]]:
    return [
        {
            "id": stable_id(stored, version, seq),
            "path": stored,
            "version": version,
            "seq": seq,
            "start": chunk.start,
            "end": chunk.end,
            "line": chunk.line,
            "tokens": chunk.tokens,
            "page": -1 if chunk.page is None else chunk.page,
            "heading": clip(chunk.heading or ""),
            "text": clip(chunk.text),
            "suffix": suffix_of(document.path),
            "mtime": float(document.mtime),
            "vector": np.asarray(vector, dtype=np.float32).tolist(),
            "terms": clip(indexed(chunk.text)),
        }
        for seq, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True))
    ]


def ledger_row(document: Document, version: int, chunks: int) -> dict[str, Any]:
    stored = stored_path(document.path)
    return {
        "key": stable_id(stored, version),
        "path": stored,
        "version": version,
        "deleted": False,
        "content_hash": document.content_hash,
        "size": int(document.size),
        "mtime": float(document.mtime),
        "encoding": document.encoding,
        "chunks": chunks,
        "suffix": suffix_of(document.path),
        "dummy": [0.0, 0.0],
    }


def tombstone(stored: str, version: int) -> dict[str, Any]:
    row = ledger_row(Document(loaded_path(stored), "", 0, 0.0, ""), version, 0)
    return row | {"deleted": True}


def document_of(row: dict[str, Any]) -> Document:
    return Document(
        loaded_path(row["path"]), row["content_hash"], int(row["size"]), float(row["mtime"]), row["encoding"]
    )


def chunk_of(row: dict[str, Any]) -> Chunk:
    page = int(row["page"])
    return Chunk(
        row["text"],
        int(row["start"]),
        int(row["end"]),
        int(row["line"]),
        int(row["tokens"]),
        None if page < 0 else page,
        row["heading"] or None,
    )


def chunk_row(row: dict[str, Any], document: int) -> ChunkRow:
    chunk = chunk_of(row)
    return ChunkRow(
        int(row["id"]),
        chunk.text,
        chunk.start,
        chunk.end,
        chunk.line,
        chunk.page,
        chunk.heading,
        document,
        int(row["seq"]),
        loaded_path(row["path"]),
    )
