"""Shared fixtures: the real release data (skipped with a reason where absent), a temp workspace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from re2llm_tui.data.release import candidate_data_dirs

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _release_dir() -> Path | None:
    for base in candidate_data_dirs(None):
        if (base / "game" / "example_train_text.json").is_file() and \
                (base / "movie" / "example_train_text.json").is_file():
            return base
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The release data folder (``.../re2llm-release``); skips when it is not on this machine."""
    found = _release_dir()
    if found is None:
        pytest.skip("release data not found (set RE2LLM_DATA or place it at "
                    "../shared/datasets/re2llm-release)")
    return found


@pytest.fixture
def workspace(tmp_path) -> Path:
    """A path for a fresh workspace file (created on first open)."""
    return tmp_path / "kb.sqlite"


@pytest.fixture
def run_cli(monkeypatch, tmp_path):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    import contextlib
    import io

    from re2llm_tui.cli import main

    def _run(*args: str, env: dict | None = None):
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
        return code, out.getvalue(), err.getvalue()

    return _run


@pytest.fixture(autouse=True)
def no_effort_from_env(monkeypatch):
    """``--reasoning-effort`` becomes ``$RE2LLM_REASONING_EFFORT`` for spawned processes; an
    in-process CLI run must not leave it to the next test (empty: not set)."""
    monkeypatch.setenv("RE2LLM_REASONING_EFFORT", "")


@pytest.fixture(autouse=True)
def fresh_control():
    """Each test starts with a fresh process-wide pause/stop gate (an app that quit in an
    earlier test leaves its gate stopped)."""
    from re2llm_tui import control

    control.install(control.Control())
    yield
    control.install(control.Control())


def integrity(path) -> str:
    """``PRAGMA integrity_check`` of a workspace file, through a fresh connection."""
    import sqlite3

    conn = sqlite3.connect(str(path))
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def count_rows(path, table: str) -> int:
    import sqlite3

    conn = sqlite3.connect(str(path))
    try:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def db_rows(path, sql: str, args=()) -> list[dict]:
    """The rows of ``sql`` on a workspace file as dicts, read-only (the file is never made):
    none while the file does not exist."""
    import sqlite3

    if not Path(path).exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, args)]
    finally:
        conn.close()


def only_error_line(code, err: str, *needles: str) -> None:
    """Exit 2 and a stderr of exactly one ``re2llm-tui: error:`` line holding ``needles``."""
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("re2llm-tui: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err


def last_error_line(err: str) -> str:
    """The one error line: the last of stderr (progress lines may come before it)."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    errors = [ln for ln in lines if "error" in ln.lower()]
    assert errors == lines[-1:] and lines[-1].startswith("re2llm-tui: error: "), err
    return lines[-1]


def wait_until(cond, what: str, timeout: float = 180.0) -> None:
    """Poll ``cond`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def cmdline(pid: int) -> bytes:
    """``/proc/PID/cmdline`` (empty once the process is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def keep_hints_1_and_2(db) -> list[tuple[int, str]]:
    """Reject every accepted hint of the games KB in workspace ``db`` but seed hints 1 and 2;
    the agent's actions left: ``[(0, ''), (1, text), (2, text)]``."""
    from re2llm_tui.data.dataset import Dataset
    from re2llm_tui.kb import KnowledgeBase

    kb = KnowledgeBase(db, Dataset.resolve("games"))
    kb.reject([h for h, _ in kb.actions()[1] if h not in (0, 1, 2)])
    return kb.actions()[1]
