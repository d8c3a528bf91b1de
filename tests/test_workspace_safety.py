"""The workspace under a mix of processes and faults (issue 10's fault battery).

Every test uses a real SQLite file and real processes; rows committed by any process must
survive and ``PRAGMA integrity_check`` must say ``ok``.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import time

import pytest
from conftest import integrity

from re2llm_tui.data.dataset import Dataset
from re2llm_tui.errors import WorkspaceError
from re2llm_tui.store.workspace import open_workspace, transaction

CTX = multiprocessing.get_context("spawn")




# ----------------------------------------------------------------------- process bodies
# (module level: spawned processes import them)

def _reopening_writer(path: str, n: int, go, tag: str) -> None:
    """Opens the workspace again and again (as the app's threads and screens do), keeping
    the older connections open, and commits one row each time."""
    conns = []
    go.wait(30)
    for i in range(n):
        db = open_workspace(path)
        conns.append(db)
        db.execute("INSERT INTO meta(key, value) VALUES (?, ?)", [f"{tag}-{i}", "x"])
        time.sleep(0.002)
    for db in conns:
        db.conn.close()


def _long_lived_app(path: str, go, stop, written) -> None:
    """The app: two connections opened (main thread and a worker), writing until told."""
    db = open_workspace(path)
    db2 = open_workspace(path)
    go.set()
    i = 0
    while not stop.is_set():
        db.execute("INSERT INTO meta(key, value) VALUES (?, ?)", [f"app-{i}", "x"])
        i += 1
        written.value = i
        time.sleep(0.01)
    db.conn.close()
    db2.conn.close()


def _cli_commands(path: str, n: int, go, tag: str) -> None:
    """CLI commands: each opens the workspace, commits one row and exits (closes)."""
    go.wait(30)
    for i in range(n):
        db = open_workspace(path)
        with transaction(db):
            db.execute("INSERT INTO meta(key, value) VALUES (?, ?)", [f"{tag}-{i}", "y"])
        db.conn.close()
        time.sleep(0.005)


def _small_tx_writer(path: str, n: int, go, tag: str) -> None:
    db = open_workspace(path)
    go.wait(30)
    for i in range(n):
        with transaction(db):
            db.execute("INSERT INTO meta(key, value) VALUES (?, ?)", [f"{tag}-{i}", "y"])
        time.sleep(0.002)
    db.conn.close()


def _kb_writer(path: str, n: int, go, tag: str, data_dir: str) -> None:
    from re2llm_tui.kb import store as kb

    go.wait(30)
    for i in range(n):
        db = open_workspace(path)          # one open per command, as `kb add` does
        kb.KnowledgeBase(db, Dataset.resolve("games")).add(f"Hint {tag} number {i}: prefer sequels", status="candidate")
        db.conn.close()


def _calls_writer(path: str, n: int, go, tag: str) -> None:
    """The LLM client's write path: one committed ``calls`` row per finished call."""
    from re2llm_tui.llm.client import LLMClient
    from re2llm_tui.llm.scripted import register_scripted

    register_scripted("scripted", lambda messages: "1. A title")
    client = LLMClient(path, model="scripted/x")
    go.wait(30)
    for i in range(n):
        res = client.complete_sync([{"role": "user", "content": f"{tag} {i}"}])
        assert res.ok, res.error
    client.close()


def _reader(path: str, go, stop) -> None:
    """`kb list`-like reads: open, read, close, repeatedly."""
    go.wait(30)
    while not stop.is_set():
        db = open_workspace(path)
        db.execute("SELECT COUNT(*) FROM meta").fetchone()
        db.conn.close()
        time.sleep(0.005)


def _start(target, *args):
    p = CTX.Process(target=target, args=args, daemon=True)
    p.start()
    return p


# ----------------------------------------------------------------------- tests

def test_reopening_in_one_process_keeps_another_process_commits(workspace):
    """The minimal case of issue 10: while one process held two connections, another
    process's 40 one-row commands kept 1 row (a header read through Python's ``open()``
    dropped the first process's SQLite locks, so each command deleted the WAL in use)."""
    open_workspace(workspace).conn.close()
    go, stop = CTX.Event(), CTX.Event()
    written = CTX.Value("i", 0)
    app = _start(_long_lived_app, str(workspace), go, stop, written)
    cli = _start(_cli_commands, str(workspace), 40, go, "cli")
    cli.join(60)
    stop.set()
    app.join(60)
    assert cli.exitcode == 0 and app.exitcode == 0
    db = open_workspace(workspace)
    keys = {k for (k,) in db.execute("SELECT key FROM meta")}
    db.conn.close()
    assert {f"cli-{i}" for i in range(40)} <= keys
    assert {f"app-{i}" for i in range(written.value)} <= keys and written.value > 0
    assert integrity(workspace) == "ok"


def test_app_and_cli_write_paths_from_many_processes(workspace, data_dir):
    """KB edits, LLM call records and reopen-heavy readers at once: nothing lost, no damage."""
    from re2llm_tui.kb import store as kb

    db = open_workspace(workspace)
    kb.KnowledgeBase(db, Dataset.resolve("games", data_dir))  # seeds the KB
    db.conn.close()
    go, stop = CTX.Event(), CTX.Event()
    procs = [
        _start(_kb_writer, str(workspace), 15, go, "k1", str(data_dir)),
        _start(_kb_writer, str(workspace), 15, go, "k2", str(data_dir)),
        _start(_calls_writer, str(workspace), 30, go, "c1"),
        _start(_reopening_writer, str(workspace), 30, go, "r"),
    ]
    readers = [_start(_reader, str(workspace), go, stop) for _ in range(2)]
    go.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0, p
    stop.set()
    for p in readers:
        p.join(30)
        assert p.exitcode == 0
    assert integrity(workspace) == "ok"
    db = open_workspace(workspace)
    texts = {h.text for h in kb.KnowledgeBase(db, Dataset.resolve("games")).hints()}
    for tag in ("k1", "k2"):
        assert {f"Hint {tag} number {i}: prefer sequels" for i in range(15)} <= texts
    n_calls = db.execute("SELECT COUNT(*) FROM calls WHERE status='ok' AND cached=0").fetchone()[0]
    assert n_calls == 30
    assert db.execute("SELECT COUNT(*) FROM meta WHERE key LIKE 'r-%'").fetchone()[0] == 30


def test_open_never_writes_an_up_to_date_workspace(workspace):
    """A read-only command opens the workspace while another process holds a long write."""
    open_workspace(workspace).conn.close()
    other = sqlite3.connect(str(workspace), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO meta(key, value) VALUES ('long', 'write')")
    try:
        t0 = time.perf_counter()
        db = open_workspace(workspace)
        assert db.execute("SELECT COUNT(*) FROM meta WHERE key='long'").fetchone()[0] == 0
        assert time.perf_counter() - t0 < 2.0
        db.conn.close()
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_another_applications_database_is_refused_untouched(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(str(path))
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(WorkspaceError, match="another application"):
        open_workspace(path)
    conn = sqlite3.connect(str(path))
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    assert tables == {"customers"} and mode == "delete"


def test_missing_directory_is_an_error_not_created(tmp_path):
    path = tmp_path / "no" / "such" / "kb.sqlite"
    with pytest.raises(WorkspaceError, match="does not exist"):
        open_workspace(path)
    assert not (tmp_path / "no").exists()


def test_non_numeric_schema_version_is_one_line(workspace):
    db = open_workspace(workspace)
    db.execute("UPDATE meta SET value='banana' WHERE key='schema_version'")
    db.conn.close()
    with pytest.raises(WorkspaceError, match="not a number") as err:
        open_workspace(workspace)
    assert "\n" not in str(err.value)


def test_garbage_file_is_refused_by_sqlite(tmp_path):
    path = tmp_path / "kb.sqlite"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)   # a header, then garbage
    with pytest.raises(WorkspaceError):
        open_workspace(path)


def test_disk_full_is_one_line_and_keeps_what_was_committed(workspace):
    db = open_workspace(workspace)
    db.execute("INSERT INTO meta(key, value) VALUES ('kept', '1')")
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count={pages}")            # the disk is now "full"
    with pytest.raises(WorkspaceError, match="full") as err:
        with transaction(db):
            db.conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)",
                                [(f"k{i}", "x" * 2000) for i in range(200)])
    assert "\n" not in str(err.value)
    db.conn.close()
    db = open_workspace(workspace)
    assert db.execute("SELECT value FROM meta WHERE key='kept'").fetchone()[0] == "1"
    assert integrity(workspace) == "ok"


def test_disk_full_while_recording_a_call_is_one_line(workspace):
    import asyncio

    from re2llm_tui.llm.client import LLMClient
    from re2llm_tui.llm.scripted import register_scripted

    register_scripted("scripted", lambda messages: "a reply " * 200)
    client = LLMClient(workspace, model="scripted/x")

    async def go():
        assert (await client.complete([{"role": "user", "content": "first"}])).ok
        db = client.workspace()                 # this thread's connection, used by the calls
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count={pages}")
        for i in range(50):
            await client.complete([{"role": "user", "content": f"more {i} " + "y" * 3000}])

    with pytest.raises(WorkspaceError, match="full") as err:
        asyncio.run(go())
    assert "\n" not in str(err.value)
    client.close()
    assert integrity(workspace) == "ok"


def test_a_version_1_workspace_is_migrated_in_place(workspace):
    db = open_workspace(workspace)
    db.execute("INSERT INTO calls (key, model, status) VALUES ('k', 'm', 'ok')")
    for col in ("cached_tokens", "usage_estimated", "reasoning", "reasoning_tokens"):
        db.execute(f"ALTER TABLE calls DROP COLUMN {col}")
    db.execute("ALTER TABLE runs DROP COLUMN pid")
    db.execute("DROP TABLE inflight")
    db.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    db.conn.close()
    db = open_workspace(workspace)
    cols = {c.name for c in db["calls"].columns}
    assert {"cached_tokens", "usage_estimated", "reasoning", "reasoning_tokens"} <= cols
    assert "pid" in {c.name for c in db["runs"].columns} and db["inflight"].exists()
    assert db.execute("SELECT key, cached_tokens, usage_estimated, reasoning_tokens "
                      "FROM calls").fetchall() == [("k", 0, 0, 0)]
    from re2llm_tui.store.workspace import SCHEMA_VERSION, get_meta
    assert get_meta(db, "schema_version") == str(SCHEMA_VERSION)
