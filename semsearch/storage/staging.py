"""Staged embeddings: the vectors of chunks of a file not yet wholly embedded, kept across a
stop so that a rerun embeds only the rest. Part of the store (``Store`` is a ``Staging``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import sqlite_utils

from .guard import guarded
from .rows import loaded, stored


class Staging:
    db: sqlite_utils.Database
    path: Path

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
