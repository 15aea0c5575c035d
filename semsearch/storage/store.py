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
from sqlite_utils import Migrations

from ..config import Manifest
from ..documents.terms import FTS_TOKENIZER, indexed
from ..errors import IndexClosedError, IndexCorruptError, IndexLockedError, ReadOnlyIndexError
from ..globs import glob_match
from .filtering import GLOB_FUNCTION
from .layout import DATABASE, disk_full, low_on_space

migrations = Migrations("semsearch")
State = tuple[int, str]  # a committed state of the database: (generation, token)
STATES_KEPT = 100_000  # states remembered: a vector file older than that is rebuilt, not synced


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db.execute(
        """CREATE TABLE documents (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            content_hash TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime REAL NOT NULL,
            encoding TEXT NOT NULL,
            chunks INTEGER NOT NULL,
            ingested_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
        )"""
    )
    db.execute(
        """CREATE TABLE chunks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            start INTEGER NOT NULL,
            "end" INTEGER NOT NULL,
            line INTEGER NOT NULL,
            tokens INTEGER NOT NULL,
            text TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX chunks_document ON chunks(document_id)")
    db.execute(
        """CREATE TABLE vectors (
            chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
            vector BLOB NOT NULL
        )"""
    )
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('generation', '0')")


@migrations()
def m002_content_hash_index(db: sqlite_utils.Database) -> None:
    # finds an indexed copy of a file's content, so a renamed or copied file is not re-embedded
    db.execute("CREATE INDEX documents_content_hash ON documents(content_hash)")


@migrations()
def m003_lexical(db: sqlite_utils.Database) -> None:
    # the chunks' search terms for BM25 (lexical.py); rows go with their chunk, by trigger, so
    # every path that deletes chunks (replace, remove, cascade) keeps the two in step
    db.execute(f'CREATE VIRTUAL TABLE chunks_fts USING fts5(terms, tokenize="{FTS_TOKENIZER}")')
    db.execute(
        "CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN DELETE FROM chunks_fts WHERE rowid = old.id; END"
    )
    _fill_lexical(db)


@migrations()
def m004_page_heading(db: sqlite_utils.Database) -> None:
    # where a chunk is in its source: the PDF page it starts on, the headings it sits under
    db.execute("ALTER TABLE chunks ADD COLUMN page INTEGER")
    db.execute("ALTER TABLE chunks ADD COLUMN heading TEXT")


@migrations()
def m005_staged(db: sqlite_utils.Database) -> None:
    # embedded chunks of a file not yet published: a large file is embedded over many commits and
    # published in one, and an interrupted run resumes it. Keyed by content, so a rename between
    # runs still finds them; start and end confirm the chunk is the same one
    db.execute(
        """CREATE TABLE staged (
            content_hash TEXT NOT NULL,
            seq INTEGER NOT NULL,
            start INTEGER NOT NULL,
            "end" INTEGER NOT NULL,
            path TEXT NOT NULL,
            vector BLOB NOT NULL,
            PRIMARY KEY (content_hash, seq)
        )"""
    )
    db.execute("CREATE INDEX staged_path ON staged(path)")


@migrations()
def m006_states(db: sqlite_utils.Database) -> None:
    # each committed state: its generation and a random token. A generation can repeat (a
    # database restored from a backup, or its journal lost, then written again); a token cannot,
    # so a vector file names the exact state it mirrors, and is used only for a state of this
    # database's own history
    db.execute("CREATE TABLE states (generation INTEGER PRIMARY KEY, token TEXT NOT NULL)")
    token = secrets.token_hex(8)
    generation = int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
    db.execute("INSERT INTO states VALUES (?, ?)", [generation, token])
    db.execute("INSERT INTO meta VALUES ('state', ?)", [token])


def _fill_lexical(db: sqlite_utils.Database) -> None:
    """Index the terms of every chunk missing from chunks_fts."""
    missing = "SELECT id, text FROM chunks WHERE id NOT IN (SELECT rowid FROM chunks_fts)"
    rows = [(chunk_id, indexed(text)) for chunk_id, text in db.execute(missing).fetchall()]
    db.conn.executemany("INSERT INTO chunks_fts (rowid, terms) VALUES (?, ?)", rows)


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


def _check_schema(db: sqlite_utils.Database, path: Path) -> None:
    """A database opened read-only cannot be upgraded: say so when it needs to be."""
    try:
        pending = migrations.pending(db)
    except sqlite3.DatabaseError:
        return  # not a semsearch database at all: the first query says so
    if pending:
        raise ReadOnlyIndexError(
            f"{path} was written by an earlier semsearch and needs an upgrade, which its read-only folder does not "
            "allow; open it once where it can be written"
        )


@contextmanager
def guard(path: Path) -> Iterator[None]:
    """Turn SQLite's errors about ``path`` into semsearch's, naming the file."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "full" in text or ("disk I/O error" in text and low_on_space(path)):
            raise disk_full(path, text) from exc
        if "readonly" in text or "read-only" in text:
            raise ReadOnlyIndexError(
                f"The index at {path.parent} is read-only (its folder or file cannot be written): searches work, "
                "writes need a writable copy"
            ) from exc
        if "locked" in text or "busy" in text:
            raise IndexLockedError(
                f"{path} is locked by another program ({text}); close it, or try again later"
            ) from exc
        if "unable to open" in text:
            raise IndexCorruptError(f"Cannot open {path}: {text}; check that it exists and is readable") from exc
        raise IndexCorruptError(f"{path}: {text}") from exc
    except sqlite3.ProgrammingError as exc:
        if "closed" in str(exc):
            raise IndexClosedError(f"{path} was used after the index was closed; open it again") from exc
        raise
    except sqlite3.DatabaseError as exc:
        if "full" in str(exc) or low_on_space(path):
            raise disk_full(path, str(exc)) from exc
        raise IndexCorruptError(
            f"{path} is damaged ({exc}); its contents cannot be trusted: rebuild the index into a new --index"
        ) from exc


class Store:
    """One index's SQLite database."""

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
                        _check_schema(db, path)
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
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            if self.db.conn.in_transaction:
                self.db.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic change, which also moves the state on: the next generation, a new token."""
        with self.db.atomic():
            self.db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
            generation, token = self.generation(), secrets.token_hex(8)
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'state'", [token])
            self.db.execute("INSERT OR REPLACE INTO states VALUES (?, ?)", [generation, token])
            self.db.execute("DELETE FROM states WHERE generation <= ?", [generation - STATES_KEPT])
            yield

    # -- manifest and generation ------------------------------------------------------

    def manifest(self) -> Manifest | None:
        value = self._meta("manifest")
        if value is None:
            return None
        try:
            return Manifest.from_json(value)
        except (ValueError, KeyError, TypeError) as exc:
            raise IndexCorruptError(f"The manifest in {self.path} is unreadable: {exc}") from exc

    def set_manifest(self, manifest: Manifest) -> None:
        with self.db.atomic():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('manifest', ?)", [manifest.to_json()])

    def generation(self) -> int:
        return int(self._meta("generation") or 0)

    def state(self) -> State:
        """The committed state read now: (generation, token)."""
        return self.generation(), self._meta("state") or ""

    def knows(self, state: State) -> bool:
        """Whether ``state`` is this database's current state or one it went through (of its
        last ``STATES_KEPT``). A state without a token (a vector file of an earlier version)
        counts only as the current generation."""
        generation, token = state
        if not token:
            return generation == self.generation()
        row = self.db.execute("SELECT 1 FROM states WHERE generation = ? AND token = ?", [generation, token])
        return row.fetchone() is not None

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

    def documents(self, under: Sequence[Path] = ()) -> dict[str, dict[str, Any]]:
        """Indexed documents by path: all, or those inside any folder of ``under``."""
        table = self.db.table("documents")
        if not under:
            return {loaded(row["path"]): {**row, "path": loaded(row["path"])} for row in table.rows}
        rows: dict[str, dict[str, Any]] = {}
        for folder in under:
            condition, params = prefix_condition("path", str(folder))
            for row in table.rows_where(condition, params):
                rows[loaded(row["path"])] = {**row, "path": loaded(row["path"])}
        return rows

    def put_document(self, document: dict[str, Any], chunks: list[dict[str, Any]], vectors: np.ndarray) -> list[int]:
        """Insert or replace one document with its chunks and vectors; returns the new chunk ids.

        Call inside ``transaction()``; the old chunks and vectors go with the old row.
        """
        self.db.execute("DELETE FROM documents WHERE path = ?", [stored(document["path"])])
        row = {**document, "path": stored(document["path"]), "chunks": len(chunks)}
        doc_id = self.db.table("documents").insert(row).last_pk
        ids: list[int] = []
        insert = (
            'INSERT INTO chunks (document_id, seq, start, "end", line, tokens, text, page, heading) '
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        for seq, chunk in enumerate(chunks):
            values = [chunk[key] for key in ("start", "end", "line", "tokens", "text")]
            cursor = self.db.execute(insert, [doc_id, seq, *values, chunk.get("page"), chunk.get("heading")])
            ids.append(int(cursor.lastrowid or 0))
        blobs = [(i, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for i, v in zip(ids, vectors, strict=True)]
        self.db.conn.executemany("INSERT INTO vectors (chunk_id, vector) VALUES (?, ?)", blobs)
        terms = [(i, indexed(chunk["text"])) for i, chunk in zip(ids, chunks, strict=True)]
        self.db.conn.executemany("INSERT INTO chunks_fts (rowid, terms) VALUES (?, ?)", terms)
        return ids

    # -- staged embeddings of files not yet published -------------------------------------

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

    def staged(self, content_hash: str, dimension: int) -> dict[int, tuple[int, int, np.ndarray]]:
        """The staged chunks of this content: seq -> (start, end, vector)."""
        sql = 'SELECT seq, start, "end", vector FROM staged WHERE content_hash = ?'
        return {
            int(seq): (int(start), int(end), np.frombuffer(blob, dtype=np.float32))
            for seq, start, end, blob in self.db.execute(sql, [content_hash])
            if len(blob) == 4 * dimension
        }

    def unstage(self, content_hashes: Sequence[str]) -> None:
        """Drop the staged chunks of these contents (published, or no longer wanted)."""
        self.db.conn.executemany("DELETE FROM staged WHERE content_hash = ?", [(h,) for h in content_hashes])

    def staged_files(self) -> dict[str, set[str]]:
        """Paths with staged chunks -> the content hashes staged under them."""
        found: dict[str, set[str]] = {}
        for path, content_hash in self.db.execute("SELECT DISTINCT path, content_hash FROM staged"):
            found.setdefault(loaded(path), set()).add(content_hash)
        return found

    def chunk_ids_of(self, paths: Sequence[str]) -> list[int]:
        ids: list[int] = []
        for path in paths:
            rows = self.db.execute(
                "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.path = ?", [stored(path)]
            )
            ids.extend(int(r[0]) for r in rows)
        return ids

    def delete_documents(self, paths: Sequence[str]) -> None:
        """Delete documents with their chunks and vectors. Call inside ``transaction()``."""
        self.db.conn.executemany("DELETE FROM documents WHERE path = ?", [(stored(p),) for p in paths])

    # -- chunks and vectors ----------------------------------------------------------------

    _CHUNK_COLUMNS = ("id", "text", "start", "end", "line", "page", "heading", "document_id", "seq", "path")
    _CHUNK_SELECT = (
        'SELECT c.id, c.text, c.start, c."end", c.line, c.page, c.heading, c.document_id, c.seq, d.path '
        "FROM chunks c JOIN documents d ON d.id = c.document_id"
    )

    def chunks(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Chunk rows with their document's path, by id."""
        if not ids:
            return {}
        sql = f"{self._CHUNK_SELECT} WHERE c.id IN (SELECT value FROM json_each(?))"
        rows = self.db.execute(sql, [json.dumps([int(i) for i in ids])])
        return {row[0]: self._chunk_row(row) for row in rows}

    def _chunk_row(self, row: Sequence[Any]) -> dict[str, Any]:
        found = dict(zip(self._CHUNK_COLUMNS, row, strict=True))
        found["path"] = loaded(found["path"])
        return found

    def neighbours(self, windows: Sequence[tuple[int, int, int]]) -> list[dict[str, Any]]:
        """The chunk rows of each (document id, first seq, last seq) window, in source order."""
        rows: list[dict[str, Any]] = []
        sql = f"{self._CHUNK_SELECT} WHERE c.document_id = ? AND c.seq BETWEEN ? AND ? ORDER BY c.seq"
        for window in windows:
            rows.extend(self._chunk_row(row) for row in self.db.execute(sql, window))
        return rows

    def matching_documents(self, condition: str, params: Sequence[Any]) -> tuple[list[int], int, int]:
        """Ids of the documents meeting a SQL ``condition`` over ``documents d``
        (``filters.to_sql``), how many chunks they hold, and how many documents there are in all."""
        rows = self.db.execute(f"SELECT d.id, d.chunks FROM documents d WHERE {condition}", params).fetchall()
        total = int(self.db.execute("SELECT count(*) FROM documents").fetchone()[0])
        return [int(r[0]) for r in rows], sum(int(r[1]) for r in rows), total

    def suffixes(self) -> list[str]:
        """The file types of the indexed documents (suffixes without the dot), sorted."""
        rows = self.db.execute("SELECT path FROM documents")
        return sorted({os.path.splitext(loaded(path))[1].lower().lstrip(".") or "(none)" for (path,) in rows})

    def chunks_among(self, ids: Sequence[int], documents: Sequence[int]) -> set[int]:
        """Those of the chunk ``ids`` that belong to ``documents``."""
        sql = (
            "SELECT id FROM chunks WHERE id IN (SELECT value FROM json_each(?)) "
            "AND document_id IN (SELECT value FROM json_each(?))"
        )
        return {int(r[0]) for r in self.db.execute(sql, [json.dumps(list(ids)), json.dumps(list(documents))])}

    def chunk_ids_in(self, documents: Sequence[int]) -> np.ndarray:
        """The ids of every chunk of these documents, sorted."""
        sql = "SELECT id FROM chunks WHERE document_id IN (SELECT value FROM json_each(?)) ORDER BY id"
        rows = self.db.execute(sql, [json.dumps(list(documents))]).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def iter_vectors(
        self, dimension: int, ids: Sequence[int] | None = None, batch: int = 10_000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stored vectors in id order, as (ids, float32 matrix) batches: all, or those of ``ids``."""
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

    def find_content(self, content_hash: str, dimension: int) -> tuple[list[dict[str, Any]], np.ndarray] | None:
        """The chunk rows and vectors of an indexed document with this content, if there is one."""
        row = self.db.execute("SELECT id FROM documents WHERE content_hash = ? LIMIT 1", [content_hash]).fetchone()
        if row is None:
            return None
        columns = ("id", "start", "end", "line", "tokens", "text", "page", "heading")
        sql = (
            'SELECT id, start, "end", line, tokens, text, page, heading FROM chunks WHERE document_id = ? ORDER BY seq'
        )
        chunks = [dict(zip(columns, r, strict=True)) for r in self.db.execute(sql, [row[0]])]
        if not chunks:
            return None
        found = [part for part in self.iter_vectors(dimension, [c["id"] for c in chunks])]
        ids = np.concatenate([f[0] for f in found]) if found else np.zeros(0, dtype=np.int64)
        if len(ids) != len(chunks):
            return None  # a damaged copy: embed again rather than spread the damage
        by_id = {int(i): n for n, i in enumerate(ids)}
        matrix = np.concatenate([f[1] for f in found])
        return chunks, matrix[[by_id[c["id"]] for c in chunks]]

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

    def repair_lexical(self) -> int:
        """Bring the lexical index in step with the chunks: drop terms of chunks that are gone,
        add those of chunks that lack them. Returns how many rows it changed."""
        with self.db.atomic():
            gone = self.db.execute("DELETE FROM chunks_fts WHERE rowid NOT IN (SELECT id FROM chunks)").rowcount
            before = int(self.db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0])
            _fill_lexical(self.db)
            after = int(self.db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0])
        return max(gone, 0) + after - before

    def chunk_ids(self) -> np.ndarray:
        """Every chunk id, sorted."""
        rows = self.db.execute("SELECT id FROM chunks ORDER BY id").fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def problems(self, dimension: int) -> dict[str, int]:
        """Counts of rows breaking the store's invariants; all zero in a sound index."""
        queries = {
            "chunks without a vector": "SELECT count(*) FROM chunks c WHERE NOT EXISTS "
            "(SELECT 1 FROM vectors v WHERE v.chunk_id = c.id)",
            "vectors without a chunk": "SELECT count(*) FROM vectors v WHERE NOT EXISTS "
            "(SELECT 1 FROM chunks c WHERE c.id = v.chunk_id)",
            "vectors of the wrong size": f"SELECT count(*) FROM vectors WHERE length(vector) != {4 * dimension}",
            "documents without chunks": "SELECT count(*) FROM documents d WHERE NOT EXISTS "
            "(SELECT 1 FROM chunks c WHERE c.document_id = d.id)",
            "documents with a wrong chunk count": "SELECT count(*) FROM documents d WHERE d.chunks != "
            "(SELECT count(*) FROM chunks c WHERE c.document_id = d.id)",
            "chunks without a document": "SELECT count(*) FROM chunks c WHERE NOT EXISTS "
            "(SELECT 1 FROM documents d WHERE d.id = c.document_id)",
            "chunks without lexical terms": "SELECT count(*) FROM chunks "
            "WHERE id NOT IN (SELECT rowid FROM chunks_fts)",
            "lexical terms without a chunk": "SELECT count(*) FROM chunks_fts "
            "WHERE rowid NOT IN (SELECT id FROM chunks)",
        }
        return {name: int(self.db.execute(sql).fetchone()[0]) for name, sql in queries.items()}

    def quick_check(self) -> str:
        """SQLite's own consistency check: 'ok' or the first problem it reports."""
        return str(self.db.execute("PRAGMA quick_check").fetchone()[0])

    def counts(self) -> dict[str, int]:
        return {
            name: int(self.db.execute(f"SELECT count(*) FROM {name}").fetchone()[0])
            for name in ("documents", "chunks", "vectors")
        }

    def staged_count(self) -> int:
        """Chunks embedded and kept for files not yet published."""
        return int(self.db.execute("SELECT count(*) FROM staged").fetchone()[0])
