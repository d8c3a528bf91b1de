"""The SQLite workspace (default ``./kb.sqlite``): KB, runs, LLM calls, training records.

Opened with sqlite-utils in WAL mode so that the TUI and a CLI job can share one file.  The
schema is created idempotently; ``meta.schema_version`` records which version a file has.
A :class:`sqlite_utils.Database` works only in the thread that opened it: open one per
worker or process.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from .errors import WorkspaceError

DEFAULT_DB = "kb.sqlite"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000

# Each statement is idempotent.  Modules own their tables; the DDL lives here so that
# one file shows the whole workspace.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);

-- a named set of LLM outputs over sessions (recommend, score import, evaluation policy)
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,             -- score | recommend | evaluate | ...
    dataset TEXT NOT NULL,
    split TEXT NOT NULL,
    model TEXT,
    prompt_version TEXT,
    hint_id INTEGER,
    hint_text TEXT,
    params TEXT,                    -- JSON
    metrics TEXT,                   -- JSON summary (metrics.summarize)
    status TEXT NOT NULL DEFAULT 'running',   -- running | done | stopped | failed
    n_failed INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS runs_dataset ON runs(dataset, split, kind);

-- one session's outcome inside a run
CREATE TABLE IF NOT EXISTS run_items (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    session_id TEXT NOT NULL,
    prompt TEXT,
    reply TEXT,
    ranking TEXT,                   -- JSON list of candidate indices, best first
    hallucinations TEXT,            -- JSON list of unmatched reply items
    target_rank INTEGER,            -- 1-based, NULL if absent from the ranking
    label_ok INTEGER NOT NULL DEFAULT 1,
    error TEXT,
    call_id INTEGER,
    PRIMARY KEY (run_id, session_id)
);
"""


def workspace_path(db: str | os.PathLike | None = None) -> Path:
    """The workspace file: ``--db``, then ``RE2LLM_DB``, then ``./kb.sqlite``."""
    return Path(db or os.environ.get("RE2LLM_DB") or DEFAULT_DB)


def open_workspace(db: str | os.PathLike | None = None, *, create: bool = True):
    """Open (and if needed create) the workspace; returns a sqlite-utils ``Database``."""
    import sqlite_utils

    path = workspace_path(db)
    if not create and not path.exists():
        raise WorkspaceError(f"{path}: workspace not found")
    if path.exists() and path.is_dir():
        raise WorkspaceError(f"{path}: is a directory, not a workspace file")
    if path.exists() and path.stat().st_size:
        with open(path, "rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                raise WorkspaceError(f"{path}: not an SQLite database")
    try:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit: every write outside ``transaction()`` is committed at once, so a
        # killed process never loses a finished call
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000,
                               isolation_level=None)
        db_ = sqlite_utils.Database(conn)
        db_.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        db_.execute("PRAGMA foreign_keys=ON")
        if db_.journal_mode != "wal":
            db_.enable_wal()
        ensure_schema(db_)
    except sqlite3.DatabaseError as exc:
        raise WorkspaceError(f"{path}: cannot open workspace ({exc})") from None
    except OSError as exc:
        raise WorkspaceError(f"{path}: cannot open workspace ({exc.strerror or exc})") from None
    return db_


def ensure_schema(db) -> None:
    """Create every table idempotently and record the schema version."""
    row = None
    if "meta" in db.table_names():
        row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row and int(row[0]) > SCHEMA_VERSION:
        raise WorkspaceError(
            f"workspace schema version {row[0]} is newer than this re2llm-tui ({SCHEMA_VERSION})")
    db.conn.executescript(SCHEMA)
    set_meta(db, "schema_version", str(SCHEMA_VERSION))


@contextlib.contextmanager
def transaction(db):
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rollback on error); nests as a no-op."""
    conn = db.conn
    if conn.in_transaction:
        yield db
        return
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise WorkspaceError(f"workspace is busy ({exc}); another process holds the lock") from None
    try:
        yield db
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def get_meta(db, key: str, default: str | None = None) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key=?", [key]).fetchone()
    return row[0] if row else default


def set_meta(db, key: str, value: str) -> None:
    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [key, value])
