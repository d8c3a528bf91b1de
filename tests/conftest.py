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
