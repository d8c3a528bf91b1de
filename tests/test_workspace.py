"""The SQLite workspace: WAL, idempotent schema, clear errors."""

from __future__ import annotations

import sqlite3

import pytest

from re2llm_tui.errors import WorkspaceError
from re2llm_tui.store.workspace import (
    SCHEMA_VERSION,
    get_meta,
    open_workspace,
    transaction,
)


def test_create_is_idempotent_and_versioned(workspace):
    db = open_workspace(workspace)
    assert db.journal_mode == "wal"
    assert get_meta(db, "schema_version") == str(SCHEMA_VERSION)
    tables = set(db.table_names())
    db2 = open_workspace(workspace)
    assert set(db2.table_names()) == tables and {"runs", "run_items", "meta"} <= tables


def test_not_a_database(tmp_path):
    p = tmp_path / "kb.sqlite"
    p.write_text("hello, not sqlite")
    with pytest.raises(WorkspaceError, match="not an SQLite database"):
        open_workspace(p)


def test_newer_schema_refused(workspace):
    db = open_workspace(workspace)
    db.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    with pytest.raises(WorkspaceError, match="newer"):
        open_workspace(workspace)


def test_transaction_rolls_back_and_lock_is_a_clear_error(workspace):
    db = open_workspace(workspace)
    with pytest.raises(RuntimeError):
        with transaction(db):
            db.execute("INSERT INTO meta(key, value) VALUES ('x', '1')")
            raise RuntimeError("boom")
    assert get_meta(db, "x") is None
    other = sqlite3.connect(str(workspace), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    db.execute("PRAGMA busy_timeout=100")
    try:
        with pytest.raises(WorkspaceError, match="busy"):
            with transaction(db):
                pass
    finally:
        other.execute("ROLLBACK")
