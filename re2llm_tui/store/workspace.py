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

from re2llm_tui.errors import WorkspaceError

DEFAULT_DB = "kb.sqlite"
SCHEMA_VERSION = 3
#: statements that bring a file of an older schema version up to the key's version
MIGRATIONS: dict[int, list[str]] = {
    # v2: prompt tokens the engine or provider served from its prefix cache
    2: ["ALTER TABLE calls ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0"],
    # v3: the process writing an output run; usage a server reported that could not be
    # trusted; a reasoning model's thinking and its tokens, kept apart from the reply; the
    # error that ended a failed output run
    3: ["ALTER TABLE runs ADD COLUMN pid INTEGER",
        "ALTER TABLE runs ADD COLUMN error TEXT",
        "ALTER TABLE calls ADD COLUMN usage_estimated INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE calls ADD COLUMN reasoning TEXT",
        "ALTER TABLE calls ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0",
        # --samples N: every sample's outcome of a run item / reward outcome (JSON)
        "ALTER TABLE run_items ADD COLUMN samples TEXT",
        "ALTER TABLE reward_outcomes ADD COLUMN samples TEXT"],
}
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
    finished_at TEXT,
    pid INTEGER,                    -- the process writing it while status='running' (v3)
    error TEXT                      -- what ended a failed run (v3)
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
    samples TEXT,                   -- --samples N > 1: JSON, every sample's outcome (v3);
                                    -- the columns above hold sample 0
    PRIMARY KEY (run_id, session_id)
);

-- ------------------------------------------------------------------------------------------
-- knowledge base and reflection (re2llm_tui/kb.py, reflection.py, embeddings.py; issue 5)

-- one hint of a dataset's KB; ``id`` is per dataset (release hints keep their index 1..20),
-- 0 is never stored: it is the implicit "no hint" action
CREATE TABLE IF NOT EXISTS hints (
    uid INTEGER PRIMARY KEY,        -- row key (FTS); never shown
    dataset TEXT NOT NULL,          -- games | movies
    id INTEGER NOT NULL CHECK (id > 0),
    text TEXT NOT NULL,             -- entity-decoded, whitespace-collapsed
    status TEXT NOT NULL CHECK (status IN ('candidate','accepted','rejected','archived')),
    source TEXT NOT NULL CHECK (source IN ('release','reflection','manual','import')),
    raw_text TEXT,                  -- the exact string read from a hints.json (byte-exact export)
    session_id TEXT,                -- provenance: the session a reflection hint came from
    reflection_id INTEGER,          -- provenance: reflections.id
    effect TEXT,                    -- provenance: JSON effectiveness result
    similar_id INTEGER,             -- provenance: most similar existing hint when proposed
    similarity REAL,                --   and its cosine similarity
    merged_into INTEGER,            -- set when archived by a merge
    note TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    UNIQUE (dataset, id)
);
CREATE INDEX IF NOT EXISTS hints_status ON hints(dataset, status);

-- every change of the KB, written in the same transaction as the change; ``before``/``after``
-- hold the full rows of the affected hints, so ``undo`` restores them exactly
CREATE TABLE IF NOT EXISTS hint_history (
    seq INTEGER PRIMARY KEY,
    dataset TEXT NOT NULL,
    action TEXT NOT NULL,           -- seed | add | edit | accept | reject | archive | merge | delete | import | undo
    hint_ids TEXT NOT NULL,         -- JSON list of affected hint ids
    before TEXT NOT NULL,           -- JSON list of rows before (rows that did not exist are absent)
    after TEXT NOT NULL,            -- JSON list of rows after (deleted rows are absent)
    detail TEXT,                    -- one-line description
    kb_version TEXT,                -- the KB version after this change
    undone_by INTEGER,              -- seq of the undo entry that reverted it
    undoes INTEGER,                 -- for an undo entry: the seq it reverted
    at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE INDEX IF NOT EXISTS hint_history_dataset ON hint_history(dataset, seq);

-- full-text search over hint text (external content, kept in sync by triggers)
CREATE VIRTUAL TABLE IF NOT EXISTS hints_fts USING fts5(text, content='hints', content_rowid='uid');
CREATE TRIGGER IF NOT EXISTS hints_fts_ai AFTER INSERT ON hints BEGIN
    INSERT INTO hints_fts(rowid, text) VALUES (new.uid, new.text);
END;
CREATE TRIGGER IF NOT EXISTS hints_fts_ad AFTER DELETE ON hints BEGIN
    INSERT INTO hints_fts(hints_fts, rowid, text) VALUES ('delete', old.uid, old.text);
END;
CREATE TRIGGER IF NOT EXISTS hints_fts_au AFTER UPDATE OF text ON hints BEGIN
    INSERT INTO hints_fts(hints_fts, rowid, text) VALUES ('delete', old.uid, old.text);
    INSERT INTO hints_fts(rowid, text) VALUES (new.uid, new.text);
END;

-- one Reflective Exploration of one session (resumable: a 'done' or 'hit' row is skipped)
CREATE TABLE IF NOT EXISTS reflections (
    id INTEGER PRIMARY KEY,
    dataset TEXT NOT NULL,
    session_id TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_version TEXT NOT NULL,   -- prompts.REFLECTION_VERSION
    params TEXT,                    -- JSON: miss_k, effect_k, effect_mode, sim_threshold, ...
    status TEXT NOT NULL DEFAULT 'running',  -- running | hit | done | stopped | failed
    baseline_source TEXT,           -- 'run:<id>' (stored reply reused) or 'llm'
    baseline_ranking TEXT,          -- JSON candidate indices
    baseline_rank INTEGER,          -- 1-based target rank or NULL
    n_proposed INTEGER NOT NULL DEFAULT 0,
    n_leak INTEGER NOT NULL DEFAULT 0,
    n_ineffective INTEGER NOT NULL DEFAULT 0,
    n_redundant INTEGER NOT NULL DEFAULT 0,
    n_added INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS reflections_session ON reflections(dataset, session_id, model);

-- every message of every conversation of a reflection, in order: the four reflection turns
-- (kind recommend | mistakes | analysis | hints) and the check conversations
-- (kind effect | redundancy, with ``proposal`` = reflection_hints.idx)
CREATE TABLE IF NOT EXISTS reflection_turns (
    reflection_id INTEGER NOT NULL REFERENCES reflections(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    turn INTEGER,                   -- 1..4 for the reflection conversation, NULL for checks
    kind TEXT NOT NULL,
    role TEXT NOT NULL,             -- user | assistant
    content TEXT NOT NULL,
    proposal INTEGER,
    source TEXT,                    -- llm | run:<id> | rank
    call_id INTEGER,
    at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    PRIMARY KEY (reflection_id, seq)
);

-- every hint a reflection proposed, with the outcome of each check
CREATE TABLE IF NOT EXISTS reflection_hints (
    reflection_id INTEGER NOT NULL REFERENCES reflections(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,           -- 1-based position in the turn-4 reply
    text TEXT NOT NULL,
    verdict TEXT NOT NULL,          -- added | leak | ineffective | redundant | duplicate | stopped
    leak TEXT,                      -- the leaked title part, if any
    rank_without INTEGER, rank_with INTEGER,
    ndcg_without REAL, ndcg_with REAL,
    similar_id INTEGER, similarity REAL,
    llm_similar_id INTEGER,         -- the hint the LLM judged similar (NULL: none / not asked)
    llm_reply TEXT,
    hint_id INTEGER,                -- hints.id when added
    PRIMARY KEY (reflection_id, idx)
);

-- sentence-embedding cache (embeddings.py), float32 little-endian vectors
CREATE TABLE IF NOT EXISTS embeddings (
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (model, text)
);
-- ------------------------------------------------------------------------------------------
-- LLM calls and response cache (re2llm_tui/llm/client.py; issue 4)

-- every LLM call the client made or served from the cache.  A row with cached=0 and
-- status='ok' is a cache entry (its reply is reused for the same ``key``); a cache hit is
-- logged as a row with cached=1, cache_of=<the serving row>, no payload and zero cost;
-- failed calls (after retries) are logged with status='failed' and never served.
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,              -- sha256(model, messages, decoding params incl. seed[, rank])
    model TEXT NOT NULL,
    purpose TEXT,                   -- chat | rank | reflection turn kinds ...
    run_id INTEGER,                 -- runs.id when made for a run (no FK: runs may be deleted)
    request TEXT,                   -- JSON {messages, decoding[, candidates, k, method]}; no keys
    response TEXT,                  -- reply text
    ranking TEXT,                   -- JSON candidate indices (rank calls)
    hallucinations TEXT,            -- JSON (rank calls)
    status TEXT NOT NULL,           -- ok | failed
    error TEXT,
    cached INTEGER NOT NULL DEFAULT 0,
    cache_of INTEGER,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,   -- USD from litellm's cost tables; 0 for local models
    latency_s REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    api_base TEXT,                  -- which server answered (no credentials)
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    cached_tokens INTEGER NOT NULL DEFAULT 0, -- prompt tokens served from a prefix cache (v2)
    usage_estimated INTEGER NOT NULL DEFAULT 0, -- 1: the server's usage was invalid; tokens and
                                    -- cost counted from the request and its output limit (v3)
    reasoning TEXT,                 -- a reasoning model's thinking, apart from the reply (v3)
    reasoning_tokens INTEGER NOT NULL DEFAULT 0 -- of completion_tokens, spent on reasoning (v3)
);
CREATE INDEX IF NOT EXISTS calls_key ON calls(key, status, cached);
CREATE INDEX IF NOT EXISTS calls_run ON calls(run_id);

-- a request being sent by a live process: another process on the same workspace that needs
-- the same key waits for its reply instead of paying for it again.  A row is removed when
-- its call is stored (or fails); a row whose process is gone is stale and taken over.
CREATE TABLE IF NOT EXISTS inflight (
    key TEXT PRIMARY KEY,           -- calls.key
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL        -- time.time() when claimed
);
-- ------------------------------------------------------------------------------------------
-- Reinforcement Utilization (re2llm_tui/rewards.py, training.py; issue 6)

-- the reward table: one session's ranking outcome under one hint text (hint_key '' = no
-- hint), so that r(s, h) = ndcg(s, h) - ndcg(s, '') is paid for once however often PPO
-- visits the pair.  ``context`` names what else determines the outcome (prompt versions,
-- ranking method, decoding); a failed call is never stored (it is retried next time).
CREATE TABLE IF NOT EXISTS reward_outcomes (
    dataset TEXT NOT NULL,
    model TEXT NOT NULL,
    context TEXT NOT NULL,
    session_id TEXT NOT NULL,
    hint_key TEXT NOT NULL,         -- sha256(hint text)[:16]; '' for no hint
    hint_id INTEGER,                -- the KB id when computed (display only)
    target_rank INTEGER,            -- 1-based; NULL when the target is not in the top 10
    ndcg REAL NOT NULL,             -- NDCG@10
    ranking TEXT,                   -- JSON candidate indices, best first
    call_id INTEGER,                -- calls.id that produced it
    samples TEXT,                   -- --samples N > 1: JSON [{target_rank, call_id,
                                    -- ranking}] per sample; ndcg is their mean (v3)
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    PRIMARY KEY (dataset, model, context, session_id, hint_key)
);

-- one PPO training run of the hint-retrieval agent
CREATE TABLE IF NOT EXISTS train_runs (
    id INTEGER PRIMARY KEY,
    dataset TEXT NOT NULL,
    model TEXT NOT NULL,
    kb_version TEXT NOT NULL,       -- the action list it was trained on
    hint_ids TEXT NOT NULL,         -- JSON hint ids of the actions, 0 (no hint) first
    seed INTEGER NOT NULL,
    total_steps INTEGER NOT NULL,
    step INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'running',   -- running | stopped | done | failed
    config TEXT,                    -- JSON PPOConfig
    n_sessions INTEGER,
    checkpoint TEXT,                -- path of the latest checkpoint
    summary TEXT,                   -- JSON: last scalars, calls, reason
    error TEXT,
    pid INTEGER,                    -- the process training it while status='running'
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at TEXT,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS train_runs_dataset ON train_runs(dataset, model, status);

-- the scalars a training run reported (agent.SCALAR_TAGS); histograms as JSON
CREATE TABLE IF NOT EXISTS train_scalars (
    run_id INTEGER NOT NULL REFERENCES train_runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    value_json TEXT,
    PRIMARY KEY (run_id, step, name)
);
"""


def workspace_path(db: str | os.PathLike | None = None) -> Path:
    """The workspace file: ``--db``, then ``RE2LLM_DB``, then ``./kb.sqlite``."""
    return Path(db or os.environ.get("RE2LLM_DB") or DEFAULT_DB)


#: ``PRAGMA application_id`` of a workspace file ("R2LT"): tells our files from other SQLite files
APPLICATION_ID = 0x52324C54


def open_workspace(db: str | os.PathLike | None = None, *, create: bool = True):
    """Open (and if needed create) the workspace; returns a sqlite-utils ``Database``.

    The file is only ever touched through SQLite: on POSIX, closing *any* descriptor of a
    file drops every fcntl lock this process holds on it -- also those of its live SQLite
    connections -- and another process then deletes the WAL in use (1 of 40 committed rows
    survived that).  So SQLite itself says "not a database".  An up-to-date workspace is
    opened without a single write, so readers never wait behind a long write transaction.
    """
    import sqlite_utils

    path = workspace_path(db)
    if path.is_dir():
        raise WorkspaceError(f"{path}: is a directory, not a workspace file")
    if not path.exists():
        if not create:
            raise WorkspaceError(f"{path}: workspace not found")
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise WorkspaceError(f"{path}: directory {parent} does not exist "
                                 "(create it first, or choose another --db)")
    try:
        # autocommit: every write outside ``transaction()`` is committed at once, so a
        # killed process never loses a finished call
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000,
                               isolation_level=None, check_same_thread=True)
    except sqlite3.Error as exc:
        raise WorkspaceError(f"{path}: cannot open workspace ({exc})") from None
    try:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys=ON")
        _check_owner(conn, path)
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode=wal")
        db_ = sqlite_utils.Database(conn)
        ensure_schema(db_)
    except WorkspaceError:
        conn.close()
        raise
    except sqlite3.DatabaseError as exc:
        conn.close()
        reason = str(exc)
        if "not a database" in reason or "malformed" in reason:
            raise WorkspaceError(f"{path}: not an SQLite database ({reason})") from None
        raise WorkspaceError(f"{path}: cannot open workspace ({reason})") from None
    return db_


def _check_owner(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse another application's SQLite file before anything is written to it."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]   # reads the header
    if app_id == APPLICATION_ID:
        return
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
    if not tables:
        return                                   # a new (or empty) file becomes a workspace
    ours = "meta" in tables and conn.execute(
        "SELECT 1 FROM meta WHERE key='schema_version'").fetchone() is not None
    if not ours:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise WorkspaceError(f"{path}: an SQLite database of another application (tables: "
                             f"{shown}), not a re2llm-tui workspace; choose another --db")


def _schema_version(db) -> int | None:
    """The stored schema version (None: a new file); one-line error if it is not a number."""
    if "meta" not in db.table_names():
        return None
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None:
        return None
    try:
        return int(str(row[0]).strip())
    except ValueError:
        raise WorkspaceError(f"workspace schema version {row[0]!r} is not a number: the file "
                             "is damaged or not a re2llm-tui workspace") from None


def ensure_schema(db) -> None:
    """Create every table idempotently and record the schema version.

    Nothing is written when the file is already at :data:`SCHEMA_VERSION`; otherwise the
    tables, migrations and version are written in one ``BEGIN IMMEDIATE`` transaction.
    """
    version = _schema_version(db)
    if version is not None and version > SCHEMA_VERSION:
        raise WorkspaceError(
            f"workspace schema version {version} is newer than this re2llm-tui ({SCHEMA_VERSION})")
    if version == SCHEMA_VERSION and db.conn.execute(
            "PRAGMA application_id").fetchone()[0] == APPLICATION_ID:
        return
    conn = db.conn
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise WorkspaceError(f"workspace is busy ({exc}); another process holds the lock") from None
    try:
        version = _schema_version(db)            # another process may have done it meanwhile
        for stmt in _statements(SCHEMA):
            conn.execute(stmt)
        for target in sorted(MIGRATIONS):
            if version is not None and version < target:
                for stmt in MIGRATIONS[target]:
                    if not _column_exists(conn, stmt):
                        conn.execute(stmt)
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                     [str(SCHEMA_VERSION)])
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _column_exists(conn: sqlite3.Connection, stmt: str) -> bool:
    """Whether ``stmt`` is an ``ALTER TABLE t ADD COLUMN c ...`` whose column ``t`` already has
    (a table the schema script just created new carries its newest columns)."""
    words = stmt.split()
    if len(words) < 6 or [w.upper() for w in words[:2] + words[3:5]] != \
            ["ALTER", "TABLE", "ADD", "COLUMN"]:
        return False
    cols = {row[1] for row in conn.execute(f"PRAGMA table_info({words[2]})")}
    return words[5] in cols


def _statements(script: str) -> list[str]:
    """Split a DDL script into complete statements (triggers hold inner semicolons)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


@contextlib.contextmanager
def transaction(db):
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rollback on error); nests as a no-op.

    A write that SQLite refuses (disk full, read-only file, I/O error) becomes a one-line
    :class:`WorkspaceError`; nothing of the transaction is kept.
    """
    conn = db.conn
    if conn.in_transaction:
        yield db
        return
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise WorkspaceError(f"workspace is busy ({exc}); another process holds the lock") \
                from None
        raise write_error(exc) from None
    try:
        yield db
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.OperationalError):
            raise write_error(exc) from None
        raise
    else:
        try:
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise write_error(exc) from None


def write_error(exc: BaseException) -> WorkspaceError:
    """A one-line error for a write SQLite refused (``database or disk is full``, ...)."""
    msg = " ".join(str(exc).split()) or type(exc).__name__
    if "full" in msg:
        return WorkspaceError(f"workspace: {msg} (free some disk space; nothing finished was lost)")
    return WorkspaceError(f"workspace: {msg}")


def get_meta(db, key: str, default: str | None = None) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key=?", [key]).fetchone()
    return row[0] if row else default


def set_meta(db, key: str, value: str) -> None:
    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [key, value])
