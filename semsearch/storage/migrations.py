"""The index database's schema, as sqlite-utils migrations applied in order on open."""

from __future__ import annotations

import os
import secrets
import sqlite3
from pathlib import Path

import sqlite_utils
from sqlite_utils import Migrations

from ..documents.terms import FTS_TOKENIZER, indexed
from ..errors import ReadOnlyIndexError
from .guard import guard
from .layout import fsync_folder

migrations = Migrations("semsearch")


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
    fill_lexical(db)


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


@migrations()
def m007_folded_terms(db: sqlite_utils.Database) -> None:
    # the terms now fold Traditional Chinese to Simplified (documents/folding.py): terms written
    # before are written again, so an old index's lexical search folds as a new one's does
    db.execute("DELETE FROM chunks_fts")
    fill_lexical(db)


def fill_lexical(db: sqlite_utils.Database) -> None:
    """Index the terms of every chunk missing from chunks_fts."""
    missing = "SELECT id, text FROM chunks WHERE id NOT IN (SELECT rowid FROM chunks_fts)"
    rows = [(chunk_id, indexed(text)) for chunk_id, text in db.execute(missing).fetchall()]
    db.conn.executemany("INSERT INTO chunks_fts (rowid, terms) VALUES (?, ?)", rows)


def check_schema(db: sqlite_utils.Database, path: Path) -> None:
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


def invariants(dimension: int) -> dict[str, str]:
    """What must hold in a sound index, each as SQL counting the rows that break it."""
    return {
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
        "chunks without lexical terms": "SELECT count(*) FROM chunks WHERE id NOT IN (SELECT rowid FROM chunks_fts)",
        "lexical terms without a chunk": "SELECT count(*) FROM chunks_fts WHERE rowid NOT IN (SELECT id FROM chunks)",
    }


def create_database(path: Path) -> None:
    """A new database at ``path``, whole or not at all: its schema is made under another name
    (WAL mode, every migration) and linked into place only then, so a reader opening the index
    meanwhile finds no database, never one half made. Under the writer lock."""
    for stale in path.parent.glob(f".{path.name}.*.new*"):  # an earlier creation that crashed
        stale.unlink(missing_ok=True)
    made = path.with_name(f".{path.name}.{os.getpid()}.new")
    with guard(path):
        conn = sqlite3.connect(made, isolation_level=None)
        try:
            db = sqlite_utils.Database(conn)
            db.execute("PRAGMA journal_mode=WAL")
            migrations.apply(db)
        finally:
            conn.close()  # the last connection: its WAL is checkpointed into the file and removed
    with open(made, "rb+") as written:
        os.fsync(written.fileno())
    try:
        os.link(made, path)  # never over a database another process made meanwhile
    except FileExistsError:
        pass
    finally:
        made.unlink()
    fsync_folder(path.parent)
