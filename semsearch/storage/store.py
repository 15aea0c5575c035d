"""The SQLite side (sqlite-utils): documents, chunks, their vectors and the index manifest.

Chunk ids never repeat (AUTOINCREMENT) and are the FAISS ids. Every change moves the state on in
the same transaction: the generation number, and a random token that no other state shares, so a
FAISS file names the exact state it mirrors and is trusted only for a state of this database's
own history (``knows``), not for a generation that repeated after a rollback or a restore.
The raw float32 vectors are kept here so FAISS can always be rebuilt without re-embedding.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from ..config import Manifest
from ..documents.chunking import Chunk
from ..documents.prepare import Document
from ..documents.terms import indexed
from ..errors import IndexCorruptError
from ..globs import glob_match
from ..query import Where
from .filtering import GLOB_FUNCTION, to_sql
from .guard import guard, guarded
from .layout import DATABASE
from .migrations import check_schema, create_database, fill_lexical, invariants, migrations
from .rows import ChunkRow, loaded, prefix_condition, stored
from .staging import Staging

State = tuple[int, str]  # a committed state of the database: (generation, token)
STATES_KEPT = 100_000  # states remembered: a vector file older than that is rebuilt, not synced
_DOCUMENT_CHUNKS = (
    'SELECT id, text, start, "end", line, tokens, page, heading FROM chunks WHERE document_id = ? ORDER BY seq'
)


class Store(Staging):
    """One index's SQLite database. Every method turns SQLite's errors into semsearch's own
    (locked, damaged, full, read-only, closed), naming the file."""

    FILENAME = DATABASE

    def __init__(self, db: sqlite_utils.Database, path: Path) -> None:
        self.db = db
        self.path = path
        self.read_only = False

    @classmethod
    def open(cls, folder: Path, create: bool = False, timeout: float = 30.0) -> Store:
        """Open the database in ``folder``; with ``create``, make folder and schema when missing.

        ``timeout`` is how long a statement waits for another connection's lock. A database in a
        folder that cannot be written (a read-only mount, a shared or backed-up copy) is opened
        read-only: searches work, writes raise ReadOnlyIndexError.
        """
        path = folder / cls.FILENAME
        if create:
            folder.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                create_database(path)
        elif path.is_file() and path.stat().st_size == 0 and any(folder.glob("vectors-*.faiss")):
            raise IndexCorruptError(
                f"{path} is empty (0 bytes) while the index's vector files are there: the database was truncated; "
                "restore it from a backup, or delete the index folder and ingest again"
            )
        read_only = not create and not os.access(folder, os.W_OK)
        modes = ["ro", "ro&immutable=1"] if read_only else ["rwc" if create else "rw"]
        conn = None
        for attempt, mode in enumerate(modes):
            try:
                with guard(path):
                    conn = sqlite3.connect(
                        f"{path.resolve().as_uri()}?mode={mode}",
                        uri=True,
                        timeout=timeout,
                        isolation_level=None,
                        check_same_thread=False,  # the owning Index lets one thread at a time use it
                    )
                    db = sqlite_utils.Database(conn)
                    conn.create_function(GLOB_FUNCTION, 2, glob_match, deterministic=True)
                    db.execute("PRAGMA foreign_keys=ON")
                    if read_only:
                        db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # can it be read this way?
                        check_schema(db, path)
                        break
                    db.execute("PRAGMA synchronous=NORMAL")
                    if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                        db.execute("PRAGMA journal_mode=WAL")
                    if migrations.pending(db):
                        migrations.apply(db)
            except IndexCorruptError:
                if conn is not None:
                    conn.close()
                    conn = None
                if attempt == len(modes) - 1:  # read-only WAL needs its -shm file: immutable, last
                    raise
            except BaseException:
                if conn is not None:
                    conn.close()
                raise
        store = cls(db, path)
        store.read_only = read_only
        return store

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Read a consistent state: other connections' commits stay unseen inside the block."""
        if self.db.conn.in_transaction:
            yield
            return
        with guard(self.path):
            self.db.execute("BEGIN")
        try:
            yield
        finally:
            with guard(self.path):
                if self.db.conn.in_transaction:
                    self.db.execute("COMMIT")

    @contextmanager
    def transaction(self, visible: bool = True) -> Iterator[None]:
        """One atomic change, which also moves the state on: the next generation, a new token.
        ``visible`` False: a change readers never see (staged work), the state stays."""
        with guard(self.path), self.db.atomic():
            if not visible:
                yield
                return
            self.db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
            generation, token = self.generation(), secrets.token_hex(8)
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'state'", [token])
            self.db.execute("INSERT OR REPLACE INTO states VALUES (?, ?)", [generation, token])
            self.db.execute("DELETE FROM states WHERE generation <= ?", [generation - STATES_KEPT])
            yield

    # -- manifest and generation ------------------------------------------------------

    @guarded
    def manifest(self) -> Manifest | None:
        value = self._meta("manifest")
        if value is None:
            return None
        try:
            return Manifest.from_json(value)
        except (ValueError, KeyError, TypeError) as exc:
            raise IndexCorruptError(f"The manifest in {self.path} is unreadable: {exc}") from exc

    @guarded
    def set_manifest(self, manifest: Manifest) -> None:
        with self.db.atomic():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('manifest', ?)", [manifest.to_json()])

    @guarded
    def generation(self) -> int:
        return int(self._meta("generation") or 0)

    @guarded
    def state(self) -> State:
        """The committed state read now: (generation, token)."""
        return self.generation(), self._meta("state") or ""

    @guarded
    def knows(self, state: State) -> bool:
        """Whether ``state`` is this database's current state or one it went through (of its
        last ``STATES_KEPT``). A state without a token (a vector file of an earlier version)
        counts only as the current generation."""
        generation, token = state
        if not token:
            return generation == self.generation()
        row = self.db.execute("SELECT 1 FROM states WHERE generation = ? AND token = ?", [generation, token])
        return row.fetchone() is not None

    @guarded
    def reserve_ids(self, above: int) -> None:
        """Make new chunk ids start past ``above`` (ids a vector file of a lost state holds), so
        an id never stands for two chunks."""
        with self.db.atomic():
            self.db.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'chunks'", [above])
            self.db.execute(
                "INSERT INTO sqlite_sequence (name, seq) SELECT 'chunks', ? "
                "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'chunks')",
                [above],
            )

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return None if row is None else str(row[0])

    # -- documents ----------------------------------------------------------------------

    _DOCUMENTS = "SELECT path, content_hash, size, mtime, encoding FROM documents"

    @guarded
    def documents(self) -> dict[str, Document]:
        """Every indexed document, by path."""
        return {d.path: d for d in map(self._document, self.db.execute(self._DOCUMENTS))}

    @guarded
    def documents_in(self, folders: Sequence[Path], files: Sequence[Path] = ()) -> dict[str, Document]:
        """Indexed documents by path at or inside any of ``folders`` or at one of ``files``; none
        when both are empty."""
        found: dict[str, Document] = {}
        for folder in folders:
            condition, params = prefix_condition("path", str(folder))
            rows = self.db.execute(f"{self._DOCUMENTS} WHERE {condition}", params)
            found |= {d.path: d for d in map(self._document, rows)}
        for file in [*folders, *files]:  # a folder named where a document's file was
            rows = self.db.execute(f"{self._DOCUMENTS} WHERE path = ?", [stored(str(file))])
            found |= {d.path: d for d in map(self._document, rows)}
        return found

    @staticmethod
    def _document(row: Sequence[Any]) -> Document:
        path, content_hash, size, mtime, encoding = row
        return Document(loaded(path), content_hash, int(size), float(mtime), encoding)

    @guarded
    def put_document(self, document: Document, chunks: Sequence[Chunk], vectors: np.ndarray) -> list[int]:
        """Insert or replace one document with its chunks and vectors; returns the new chunk ids.

        Call inside ``transaction()``; the old chunks and vectors go with the old row.
        """
        path = stored(document.path)
        self.db.execute("DELETE FROM documents WHERE path = ?", [path])
        cursor = self.db.execute(
            "INSERT INTO documents (path, content_hash, size, mtime, encoding, chunks) VALUES (?, ?, ?, ?, ?, ?)",
            [path, document.content_hash, document.size, document.mtime, document.encoding, len(chunks)],
        )
        doc_id = int(cursor.lastrowid or 0)
        ids: list[int] = []
        insert = (
            'INSERT INTO chunks (document_id, seq, start, "end", line, tokens, text, page, heading) '
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        for seq, c in enumerate(chunks):
            cursor = self.db.execute(insert, [doc_id, seq, c.start, c.end, c.line, c.tokens, c.text, c.page, c.heading])
            ids.append(int(cursor.lastrowid or 0))
        blobs = [(i, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for i, v in zip(ids, vectors, strict=True)]
        self.db.conn.executemany("INSERT INTO vectors (chunk_id, vector) VALUES (?, ?)", blobs)
        terms = [(i, indexed(chunk.text)) for i, chunk in zip(ids, chunks, strict=True)]
        self.db.conn.executemany("INSERT INTO chunks_fts (rowid, terms) VALUES (?, ?)", terms)
        return ids

    @guarded
    def chunk_ids_of(self, paths: Sequence[str]) -> list[int]:
        ids: list[int] = []
        for path in paths:
            rows = self.db.execute(
                "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.path = ?", [stored(path)]
            )
            ids.extend(int(r[0]) for r in rows)
        return ids

    @guarded
    def delete_documents(self, paths: Sequence[str]) -> None:
        """Delete documents with their chunks and vectors. Call inside ``transaction()``."""
        self.db.conn.executemany("DELETE FROM documents WHERE path = ?", [(stored(p),) for p in paths])

    # -- chunks and vectors ----------------------------------------------------------------

    _CHUNK_SELECT = (
        'SELECT c.id, c.text, c.start, c."end", c.line, c.page, c.heading, c.document_id, c.seq, d.path '
        "FROM chunks c JOIN documents d ON d.id = c.document_id"
    )

    @guarded
    def chunks(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        """Chunk rows with their document's path, by id."""
        if not ids:
            return {}
        sql = f"{self._CHUNK_SELECT} WHERE c.id IN (SELECT value FROM json_each(?))"
        rows = self.db.execute(sql, [json.dumps([int(i) for i in ids])])
        return {row[0]: self._chunk_row(row) for row in rows}

    @staticmethod
    def _chunk_row(row: Sequence[Any]) -> ChunkRow:
        chunk_id, text, start, end, line, page, heading, document_id, seq, path = row
        return ChunkRow(chunk_id, text, start, end, line, page, heading, document_id, seq, loaded(path))

    @guarded
    def neighbours(self, windows: Sequence[tuple[int, int, int]]) -> list[ChunkRow]:
        """The chunk rows of each (document id, first seq, last seq) window, in source order."""
        rows: list[ChunkRow] = []
        sql = f"{self._CHUNK_SELECT} WHERE c.document_id = ? AND c.seq BETWEEN ? AND ? ORDER BY c.seq"
        for window in windows:
            rows.extend(self._chunk_row(row) for row in self.db.execute(sql, window))
        return rows

    @guarded
    def matching_documents(self, where: Where, base: str) -> tuple[list[int], int, int]:
        """Ids of the documents ``where`` lets through (relative path patterns taken from
        ``base``), how many chunks they hold, and how many documents there are in all."""
        condition, params = to_sql(where, base)
        rows = self.db.execute(f"SELECT d.id, d.chunks FROM documents d WHERE {condition}", params).fetchall()
        total = int(self.db.execute("SELECT count(*) FROM documents").fetchone()[0])
        return [int(r[0]) for r in rows], sum(int(r[1]) for r in rows), total

    @guarded
    def suffixes(self) -> list[str]:
        """The file types of the indexed documents (suffixes without the dot), sorted."""
        rows = self.db.execute("SELECT path FROM documents")
        return sorted({os.path.splitext(loaded(path))[1].lower().lstrip(".") or "(none)" for (path,) in rows})

    @guarded
    def chunks_among(self, ids: Sequence[int], documents: Sequence[int]) -> set[int]:
        """Those of the chunk ``ids`` that belong to ``documents``."""
        sql = (
            "SELECT id FROM chunks WHERE id IN (SELECT value FROM json_each(?)) "
            "AND document_id IN (SELECT value FROM json_each(?))"
        )
        return {int(r[0]) for r in self.db.execute(sql, [json.dumps(list(ids)), json.dumps(list(documents))])}

    @guarded
    def chunk_ids_in(self, documents: Sequence[int]) -> np.ndarray:
        """The ids of every chunk of these documents, sorted."""
        sql = "SELECT id FROM chunks WHERE document_id IN (SELECT value FROM json_each(?)) ORDER BY id"
        rows = self.db.execute(sql, [json.dumps(list(documents))]).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def iter_vectors(
        self, dimension: int, ids: Sequence[int] | None = None, batch: int = 10_000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stored vectors in id order, as (ids, float32 matrix) batches: all, or those of ``ids``."""
        with guard(self.path):  # a generator: guarded as it runs
            yield from self._vectors(dimension, ids, batch)

    def _vectors(
        self, dimension: int, ids: Sequence[int] | None, batch: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if ids is not None:
            wanted = sorted(int(i) for i in ids)
            for first in range(0, len(wanted), batch):
                part = wanted[first : first + batch]
                sql = f"SELECT chunk_id, vector FROM vectors WHERE chunk_id IN ({','.join('?' * len(part))})"
                rows = self.db.execute(sql + " ORDER BY chunk_id", part).fetchall()
                if rows:
                    yield self._matrix(rows, dimension)
            return
        last = -1
        while True:
            rows = self.db.execute(
                "SELECT chunk_id, vector FROM vectors WHERE chunk_id > ? ORDER BY chunk_id LIMIT ?", [last, batch]
            ).fetchall()
            if not rows:
                return
            found, matrix = self._matrix(rows, dimension)
            yield found, matrix
            last = int(found[-1])

    def _matrix(self, rows: list[tuple[int, bytes]], dimension: int) -> tuple[np.ndarray, np.ndarray]:
        if any(len(r[1]) != 4 * dimension for r in rows):
            raise IndexCorruptError(
                f"{self.path} holds vectors that are not {dimension}-d, which 'semsearch repair' cannot mend; "
                "re-embed them with 'semsearch ingest --reindex'"
            )
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        return ids, np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dimension)

    @guarded
    def lexical_search(
        self, expression: str, limit: int, documents: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """(chunk id, BM25 score, higher is better) of the best ``limit`` chunks matching the
        FTS5 ``expression`` (see ``lexical.match_expression``), of ``documents`` only if given.

        With ``documents`` the full-text match runs first, once, and its rows are then kept or
        dropped by their chunk's document (CROSS JOIN fixes that order): a filter costs about
        what the same search without one costs. Led the other way, from the allowed chunks
        into the full-text index, SQLite matched the expression once per allowed chunk."""
        if documents is None:
            sql = "SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY 2 LIMIT ?"
            params: list[Any] = [expression, limit]
        else:
            sql = (
                "SELECT f.rowid, bm25(chunks_fts) FROM chunks_fts f CROSS JOIN chunks c ON c.id = f.rowid "
                "WHERE chunks_fts MATCH ? AND c.document_id IN (SELECT value FROM json_each(?)) ORDER BY 2 LIMIT ?"
            )
            params = [expression, json.dumps(list(documents)), limit]
        return [(int(rowid), -float(score)) for rowid, score in self.db.execute(sql, params)]

    @guarded
    def repair_lexical(self) -> int:
        """Bring the lexical index in step with the chunks: drop terms of chunks that are gone,
        add those of chunks that lack them. Returns how many rows it changed."""
        with self.db.atomic():
            gone = self.db.execute("DELETE FROM chunks_fts WHERE rowid NOT IN (SELECT id FROM chunks)").rowcount
            before = int(self.db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0])
            fill_lexical(self.db)
            after = int(self.db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0])
        return max(gone, 0) + after - before

    @guarded
    def chunk_ids(self) -> np.ndarray:
        """Every chunk id, sorted."""
        rows = self.db.execute("SELECT id FROM chunks ORDER BY id").fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    @guarded
    def problems(self, dimension: int) -> dict[str, int]:
        """Counts of rows breaking the store's invariants; all zero in a sound index."""
        return {name: int(self.db.execute(sql).fetchone()[0]) for name, sql in invariants(dimension).items()}

    @guarded
    def quick_check(self) -> str:
        """SQLite's own consistency check: 'ok' or the first problem it reports."""
        return str(self.db.execute("PRAGMA quick_check").fetchone()[0])

    @guarded
    def counts(self) -> dict[str, int]:
        tables = ("documents", "chunks", "vectors")
        return {name: int(self.db.execute(f"SELECT count(*) FROM {name}").fetchone()[0]) for name in tables}
