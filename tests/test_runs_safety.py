"""Runs are safe from `runs rm` while written, end `failed` on errors, and options that
allocate in proportion are bounded (issue 19, items 2 and 6).

Real processes: the CLI as a subprocess writing a run against the loopback stub server
while another process tries to delete it.
"""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import db_rows, wait_until
from stub_server import StubServer

HERE = Path(__file__).parent


def _cli(*args, env=None, **kw):
    """The CLI as its own process (the console script of this venv, this checkout's code)."""
    exe = Path(sys.executable).with_name("re2llm-tui")
    full_env = {**os.environ, "OPENAI_API_KEY": "sk-test", **(env or {})}
    return subprocess.Popen([str(exe), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full_env, **kw)


def _rows(db, sql, args=()):
    try:
        return db_rows(db, sql, args)
    except sqlite3.OperationalError:          # the job has not created its tables yet
        return []


def _wait_first_item(db) -> None:
    wait_until(lambda: _rows(db, "SELECT 1 FROM run_items"), what="the writer's first item")


def _one_line(err: str, *needles: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    assert lines and lines[-1].startswith("re2llm-tui: error: "), err
    for n in needles:
        assert n in lines[-1], err
    return lines[-1]


def _recommend(server, db, data_dir, n, *extra):
    return _cli("recommend", "--dataset", "games", "--split", "test", "--limit", n,
                "--model", "openai/stub-model", "--api-base", server.base_url,
                "--concurrency", "1", "--db", db, "--data-dir", data_dir, *extra)


# --------------------------------------------------------------------------- item 2


def test_rm_force_never_deletes_a_run_a_live_process_writes(tmp_path, data_dir, run_cli):
    """A `recommend` process is writing run 1: `runs rm --force` (from this process) is
    refused in one line naming the writer's pid; the writer finishes and every item is
    stored."""
    db = tmp_path / "kb.sqlite"
    with StubServer(latency=0.5) as srv:
        writer = _recommend(srv, db, data_dir, 16)
        try:
            _wait_first_item(db)
            run, = _rows(db, "SELECT id, status, pid FROM runs")
            assert run["status"] == "running" and run["pid"] == writer.pid
            code, _out, err = run_cli("runs", "rm", run["id"], "--force", "--yes", "--db", db)
            assert writer.poll() is None, "the writer had finished: nothing was tested"
            assert code == 2, err
            _one_line(err, f"run {run['id']} is running in process {writer.pid}")
            out, err = writer.communicate(timeout=300)
        finally:
            writer.kill()
    assert writer.returncode == 0, err
    assert "FOREIGN KEY" not in err
    run, = _rows(db, "SELECT id, status, pid FROM runs")
    assert run["status"] == "done" and run["pid"] is None
    assert len(_rows(db, "SELECT 1 FROM run_items WHERE run_id=?", [run["id"]])) == 16
    # finished, nobody writes it: an ordinary rm deletes it
    code, _out, err = run_cli("runs", "rm", run["id"], "--yes", "--db", db)
    assert code == 0, err
    assert not _rows(db, "SELECT 1 FROM runs")


def test_a_killed_writer_leaves_a_run_that_only_force_deletes(tmp_path, data_dir, run_cli):
    """SIGKILL of the writer: its run stays `running` with a dead pid; `runs list` says the
    process is gone, `rm` asks for --force, and --force deletes it."""
    db = tmp_path / "kb.sqlite"
    with StubServer(latency=0.4) as srv:
        writer = _recommend(srv, db, data_dir, 40)
        try:
            _wait_first_item(db)
        finally:
            os.kill(writer.pid, signal.SIGKILL)
            writer.communicate(timeout=30)
    run, = _rows(db, "SELECT id, status, pid FROM runs")
    assert run["status"] == "running" and run["pid"] == writer.pid
    code, out, err = run_cli("runs", "list", "--db", db, env={"COLUMNS": "200"})
    assert code == 0, err
    assert "running (process gone)" in out
    code, _out, err = run_cli("runs", "rm", run["id"], "--yes", "--db", db)
    assert code == 2
    _one_line(err, f"its process {writer.pid} is gone", "--force")
    code, _out, err = run_cli("runs", "rm", run["id"], "--yes", "--force", "--db", db)
    assert code == 0, err
    assert not _rows(db, "SELECT 1 FROM runs")


def test_a_refused_key_marks_the_run_failed(tmp_path, data_dir):
    """401 on every call: one line, exit 2, and the run is `failed` with the error kept --
    not left `running`."""
    db = tmp_path / "kb.sqlite"
    with StubServer(fail_all="401") as srv:
        proc = _recommend(srv, db, data_dir, 4)
        _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    _one_line(err, "refused the credentials")
    run, = _rows(db, "SELECT status, pid, error FROM runs")
    assert run["status"] == "failed" and run["pid"] is None
    assert "AuthFailed" in run["error"]


def test_a_workspace_error_mid_run_marks_the_run_failed(workspace, data_dir):
    """Any exception while a run is written (here: the workspace refuses an item) ends it
    `failed` with the error, never `running`."""
    from re2llm_tui.data.release import load_sessions
    from re2llm_tui.evaluation.recommend import recommend
    from re2llm_tui.llm.client import LLMClient
    from re2llm_tui.store.workspace import open_workspace

    sessions = load_sessions("games", "test", data_dir)[:3]
    db = open_workspace(workspace)
    # a trigger makes the second item's insert fail, as a full disk or a broken file would
    db.execute("CREATE TRIGGER boom BEFORE INSERT ON run_items WHEN "
               "(SELECT COUNT(*) FROM run_items) >= 1 BEGIN "
               "SELECT RAISE(ABORT, 'disk I/O error (simulated)'); END")
    with StubServer() as srv:
        with LLMClient(workspace, model="hosted_vllm/stub-model", api_bases=[srv.base_url],
                       concurrency=1, retry_base=0.01) as client:
            with pytest.raises(Exception, match="simulated"):
                recommend(sessions, client, dataset="games", split="test")
    run, = _rows(workspace, "SELECT status, pid, error FROM runs")
    assert run["status"] == "failed" and run["pid"] is None
    assert "simulated" in run["error"]


# --------------------------------------------------------------------------- item 6


def _two_runs(db_path, n=30):
    from re2llm_tui.store import runs
    from re2llm_tui.store.workspace import open_workspace

    db = open_workspace(db_path)
    ids = []
    for k in range(2):
        rid = runs.create_run(db, name=f"r{k}", kind="score", dataset="games", split="test")
        for i in range(n):
            runs.add_run_item(db, rid, f"test-{i:04d}", target_rank=(i + k) % 12 + 1)
        runs.finish_run(db, rid, None)
        ids.append(rid)
    db.conn.close()
    return ids


def _limit_memory():          # a child that tried to allocate gigabytes fails fast
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


@pytest.mark.parametrize("command", ["compare", "export"])
def test_resamples_is_bounded_in_one_line(workspace, command):
    a, b = _two_runs(workspace)
    extra = ["--paired"] if command == "export" else []
    proc = _cli("runs", command, a, b, *extra, "--resamples", "100000000", "--db", workspace,
                preexec_fn=_limit_memory)
    try:
        _out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 2, err
    _one_line(err, "--resamples must be at most 100,000", "100,000,000")
    # the bound itself is allowed
    proc = _cli("runs", command, a, b, *extra, "--resamples", "100000", "--db", workspace,
                "--json" if command == "compare" else "--format=csv")
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err


def test_permutations_is_bounded_before_any_work(tmp_path, data_dir):
    db = tmp_path / "kb.sqlite"
    with StubServer() as srv:
        proc = _cli("evaluate", "--dataset", "games", "-n", "2", "--no-oracle",
                    "--permutations", "1000000", "--model", "openai/stub-model",
                    "--api-base", srv.base_url, "--db", db, "--data-dir", data_dir)
        try:
            _out, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
        assert srv.n_requests == 0
    assert proc.returncode == 2, err
    _one_line(err, "--permutations must be at most 100")
    assert not db.exists()


def _too_many() -> int:
    """One more process than allowed: one per core this process may use, at least 4."""
    return max(4, len(os.sched_getaffinity(0))) + 1


@pytest.mark.parametrize("command", ["recommend", "train", "evaluate", "run", "env",
                                     "local-workers"])
def test_client_procs_is_bounded_by_the_cores(tmp_path, data_dir, command):
    """One process per core (at least 4) for every command that starts client processes;
    one line and exit 2 before anything is started or written."""
    db = tmp_path / "kb.sqlite"
    n = str(_too_many())
    env = None
    with StubServer() as srv:
        llm = ["--model", "openai/stub-model", "--api-base", srv.base_url, "--db", db,
               "--data-dir", data_dir]
        procs = ["--client-procs", n]
        if command == "env":
            command, procs, env = "recommend", [], {"RE2LLM_CLIENT_PROCS": n}
        if command == "local-workers":
            command, procs = "train", ["--local-workers", n]
        args = {"recommend": ["recommend", "-n", "6", *procs, *llm],
                "train": ["train", "-n", "2", "--steps", "64", *procs, *llm],
                "evaluate": ["evaluate", "-n", "2", "--no-oracle", *procs, *llm],
                "run": ["run", *procs, *llm]}[command]
        proc = _cli(*args, env=env, stdin=subprocess.DEVNULL)
        try:
            _out, err = proc.communicate(timeout=240)
        finally:
            proc.kill()
        assert srv.n_requests == 0
    assert proc.returncode == 2, err
    _one_line(err, f"must be at most {int(n) - 1} on this machine", f"(got {n})")
    assert not _rows(db, "SELECT 1 FROM runs") and not _rows(db, "SELECT 1 FROM train_runs")
