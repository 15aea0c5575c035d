"""Embeddings kept for reuse: staged ones, the vectors of chunks of a file not yet wholly
embedded, kept across a stop so that a rerun embeds only the rest; and an indexed document's
chunks with their vectors, for a renamed or copied file and for a migration. Part of the store
(``Store`` is a ``Staging``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from ..documents.chunking import Chunk, placed_alike
from .guard import guarded
from .rows import loaded, stored

_DOCUMENT_CHUNKS = (
    'SELECT id, text, start, "end", line, tokens, page, heading FROM chunks WHERE document_id = ? ORDER BY seq'
)


class Staging:
    db: sqlite_utils.Database
    path: Path

    def iter_vectors(
        self, dimension: int, ids: Sequence[int] | None = None, batch: int = 10_000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        raise NotImplementedError  # the store's

    @guarded
    def find_content(
        self, content_hash: str, chunks: Sequence[Chunk], dimension: int
    ) -> tuple[list[Chunk], np.ndarray] | None:
        """The chunks and vectors of an indexed document with this content cut into ``chunks``
        (``placed_alike``), if there is one."""
        for (document,) in self.db.execute(
            "SELECT id FROM documents WHERE content_hash = ?", [content_hash]
        ).fetchall():
            rows = self.db.execute(_DOCUMENT_CHUNKS, [document]).fetchall()
            if placed_alike([Chunk(*r[1:]) for r in rows], chunks):
                return self._with_vectors(rows, dimension)
        return None

    @guarded
    def document_chunks(self, path: str, dimension: int) -> tuple[list[Chunk], np.ndarray] | None:
        """The chunks, in order, and vectors of the document at ``path``, if it is indexed whole."""
        row = self.db.execute("SELECT id FROM documents WHERE path = ?", [stored(path)]).fetchone()
        return (
            None
            if row is None
            else self._with_vectors(self.db.execute(_DOCUMENT_CHUNKS, [row[0]]).fetchall(), dimension)
        )

    def _with_vectors(self, rows: list[Any], dimension: int) -> tuple[list[Chunk], np.ndarray] | None:
        """A document's chunk rows (id, then ``Chunk``'s fields) with their vectors, in order."""
        found = list(self.iter_vectors(dimension, [r[0] for r in rows]))
        ids = np.concatenate([f[0] for f in found]) if found else np.zeros(0, dtype=np.int64)
        if not rows or len(ids) != len(rows):
            return None  # a damaged copy: embed again rather than spread the damage
        by_id = {int(i): n for n, i in enumerate(ids)}
        matrix = np.concatenate([f[1] for f in found])
        return [Chunk(*r[1:]) for r in rows], matrix[[by_id[r[0]] for r in rows]]

    @guarded
    def stage(self, content_hash: str, path: str, rows: Sequence[tuple[int, int, int]], vectors: np.ndarray) -> None:
        """Keep the vectors of chunks (seq, start, end) of the content ``content_hash`` (now at
        ``path``) until the whole file is embedded. Call inside a transaction."""
        blobs = [
            (content_hash, seq, start, end, stored(path), np.ascontiguousarray(v, dtype=np.float32).tobytes())
            for (seq, start, end), v in zip(rows, vectors, strict=True)
        ]
        self.db.conn.executemany(
            'INSERT OR REPLACE INTO staged (content_hash, seq, start, "end", path, vector) VALUES (?, ?, ?, ?, ?, ?)',
            blobs,
        )

    @guarded
    def staged(self, content_hash: str, dimension: int) -> dict[int, tuple[int, int, np.ndarray]]:
        """The staged chunks of this content: seq -> (start, end, vector)."""
        sql = 'SELECT seq, start, "end", vector FROM staged WHERE content_hash = ?'
        return {
            int(seq): (int(start), int(end), np.frombuffer(blob, dtype=np.float32))
            for seq, start, end, blob in self.db.execute(sql, [content_hash])
            if len(blob) == 4 * dimension
        }

    @guarded
    def unstage(self, content_hashes: Sequence[str]) -> None:
        """Drop the staged chunks of these contents (published, or no longer wanted)."""
        self.db.conn.executemany("DELETE FROM staged WHERE content_hash = ?", [(h,) for h in content_hashes])

    @guarded
    def staged_files(self) -> dict[str, set[str]]:
        """Paths with staged chunks -> the content hashes staged under them."""
        found: dict[str, set[str]] = {}
        for path, content_hash in self.db.execute("SELECT DISTINCT path, content_hash FROM staged"):
            found.setdefault(loaded(path), set()).add(content_hash)
        return found

    @guarded
    def staged_count(self) -> int:
        """Chunks embedded and kept for files not yet published."""
        return int(self.db.execute("SELECT count(*) FROM staged").fetchone()[0])
