"""A request in flight in one process is not sent again by another process on the same
workspace (the ``inflight`` claims of :mod:`re2llm_tui.llm.inflight`), and two training runs
of the same configuration on one workspace are refused.

Real processes: the CLI as subprocesses against the loopback stub server of this test process,
which counts every request by the hash of its messages.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import wait_until
from stub_server import StubServer
from test_llm_recommend import _target_first

from re2llm_tui.data.release import load_sessions

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args) -> subprocess.Popen:
    env = {**os.environ, "OPENAI_API_KEY": "sk-test",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                         if p)}
    return subprocess.Popen([sys.executable, "-c", "from re2llm_tui.cli import entry; entry()",
                             *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)


def _recommend(db, data_dir, base, n, *extra) -> subprocess.Popen:
    # a generous --timeout: a busy machine must not make a request time out and go again
    return _cli("recommend", "--dataset", "games", "--split", "test", "--limit", n,
                "--model", "openai/stub-model", "--api-base", base, "--timeout", 300,
                "--db", db, "--data-dir", data_dir, "--no-resume", "--json", *extra)


def _query(db, sql, args=()) -> list[tuple]:
    if not Path(db).exists():
        return []
    con = sqlite3.connect(str(db), timeout=30)
    try:
        return con.execute(sql, args).fetchall()
    except sqlite3.OperationalError:        # the job has not created its tables yet
        return []
    finally:
        con.close()


def _claims(db) -> list[tuple]:
    return _query(db, "SELECT key, pid, started_at FROM inflight")


def _end(*procs) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=30)


def _rankings(db, run_id) -> dict:
    return dict(_query(db, "SELECT session_id, ranking FROM run_items WHERE run_id=?", [run_id]))


def test_two_recommend_processes_pay_for_each_prompt_once(tmp_path, data_dir):
    """Two identical ``recommend`` processes on one workspace, the second started while the
    first has requests in flight: the server receives each distinct prompt once (before:
    every prompt in flight twice), and both runs end with the same rankings."""
    db = tmp_path / "kb.sqlite"
    n = 16
    sessions = load_sessions("games", "test", data_dir)[:n]
    reply = _target_first(sessions, {s.id for s in sessions[::2]})
    with StubServer(latency=1.0, reply_fn=reply) as srv:
        a = _recommend(db, data_dir, srv.base_url, n, "--concurrency", 2)
        try:
            wait_until(lambda: srv.n_requests >= 1, "the first process's first request")
            b = _recommend(db, data_dir, srv.base_url, n, "--concurrency", 2)
            outs = []
            for p in (a, b):
                out, err = p.communicate(timeout=600)
                assert p.returncode == 0, err
                assert "Traceback" not in err
                outs.append(json.loads(out))
        finally:
            _end(a)
        paid = dict(srv.requests)
    distinct = _query(db, "SELECT COUNT(DISTINCT key) FROM calls WHERE cached=0 "
                          "AND status='ok'")[0][0]
    print(f"requests {sum(paid.values())} for {distinct} distinct prompts")
    assert sum(paid.values()) == len(paid) == distinct == n          # each prompt once
    ra, rb = outs
    assert ra["done"] == rb["done"] == n and ra["failed"] == rb["failed"] == 0
    assert ra["calls"] + rb["calls"] == n                            # one paid, the other waited
    assert rb["cache_hits"] >= 1
    assert ra["run_id"] != rb["run_id"]
    assert _rankings(db, ra["run_id"]) == _rankings(db, rb["run_id"])
    assert len(_rankings(db, ra["run_id"])) == n
    assert ra["metrics"] == rb["metrics"]
    assert _claims(db) == []                                        # every claim cleared


def test_a_claim_left_by_a_killed_process_is_taken_over(tmp_path, data_dir):
    """SIGKILL mid-request leaves the claim of a dead process; a rerun takes it over at once
    (it does not wait out the stale bound), pays for the request and clears the claim."""
    db = tmp_path / "kb.sqlite"
    with StubServer(latency=120.0) as srv:
        a = _recommend(db, data_dir, srv.base_url, 1, "--concurrency", 1)
        try:
            wait_until(lambda: _claims(db) and srv.n_requests == 1, "the request in flight")
            (key, pid, _), = _claims(db)
            assert pid == a.pid
            a.send_signal(signal.SIGKILL)
            a.wait(30)
        finally:
            _end(a)
        srv.latency = 0.05
        t0 = time.monotonic()
        b = _recommend(db, data_dir, srv.base_url, 1, "--concurrency", 1)
        try:
            out, err = b.communicate(timeout=300)
        finally:
            _end(b)
        took = time.monotonic() - t0
        assert b.returncode == 0, err
        res = json.loads(out)
        assert res["calls"] == 1 and res["cache_hits"] == 0 and res["failed"] == 0
        assert srv.n_requests == 2                     # the killed one and the rerun's
    assert took < 120                                  # far below the stale bound (>= 7 min)
    assert _claims(db) == []
    assert _query(db, "SELECT COUNT(*) FROM calls WHERE key=? AND status='ok'", [key]) == [(1,)]


def test_a_stop_while_waiting_on_another_process_answers_at_once(tmp_path, data_dir):
    """A process waiting on another process's claim sends nothing, and SIGTERM ends it within
    a second or so (exit 130, one line, no traceback)."""
    db = tmp_path / "kb.sqlite"
    with StubServer(latency=120.0) as srv:
        a = _recommend(db, data_dir, srv.base_url, 1, "--concurrency", 1)
        b = None
        try:
            wait_until(lambda: _claims(db) and srv.n_requests == 1, "the first request in flight")
            b = _recommend(db, data_dir, srv.base_url, 1, "--concurrency", 1)
            wait_until(lambda: _query(db, "SELECT COUNT(*) FROM runs")[0][0] >= 2,
                       "the second run to start")
            time.sleep(3.0)                    # the second process reaches its request
            assert srv.n_requests == 1         # ... and waits for the first one's reply
            assert b.poll() is None
            t0 = time.monotonic()
            b.send_signal(signal.SIGTERM)
            out, err = b.communicate(timeout=30)
            took = time.monotonic() - t0
        finally:
            _end(a, *(p for p in [b] if p is not None))
    assert b.returncode == 130, err
    assert took < 3.0, took                      # "within a second", 3x slack for a busy box
    assert "Traceback" not in err and "stopped" in err
    assert srv.n_requests == 1
    # neither process holds a claim any more: b never had one, a's is a dead process's
    assert all(pid == a.pid for _, pid, _ in _claims(db))


def _train(db, data_dir, base, *extra) -> subprocess.Popen:
    return _cli("train", "--dataset", "games", "--limit", 2, "--steps", 100000, "--seed", 1,
                "--model", "openai/stub-model", "--api-base", base, "--db", db,
                "--data-dir", data_dir, *extra)


def test_a_second_training_run_of_the_same_configuration_is_refused(tmp_path, data_dir):
    """While one ``train`` runs, another of the same configuration on the workspace is refused
    with one line naming the first -- also with ``--fresh`` (the TUI's new run), which before
    started a second run paying for every outcome again."""
    db = tmp_path / "kb.sqlite"
    with StubServer(latency=2.0) as srv:
        a = _train(db, data_dir, srv.base_url)
        try:
            wait_until(lambda: _query(db, "SELECT id FROM train_runs WHERE status='running'"),
                       "the first training run", timeout=300)
            (run_id,), = _query(db, "SELECT id FROM train_runs")
            for extra in (("--fresh",), ()):
                b = _train(db, data_dir, srv.base_url, *extra)
                out, err = b.communicate(timeout=300)
                assert b.returncode == 2, (extra, err)
                lines = err.strip().splitlines()
                assert len(lines) == 1 and lines[0].startswith("re2llm-tui: error:"), err
                assert f"training run {run_id}" in err and f"process {a.pid}" in err, err
            assert _query(db, "SELECT COUNT(*) FROM train_runs") == [(1,)]
            assert a.poll() is None
            a.send_signal(signal.SIGTERM)
            out, err = a.communicate(timeout=60)
        finally:
            _end(a)
    assert a.returncode == 130, err


def test_the_same_training_in_a_spawned_process_fails_naming_the_first(tmp_path, data_dir):
    """The TUI's Training screen starts runs with start_training_process (a new run, not a
    resume): the refusal arrives as the job's one-line error, which the app notifies."""
    from re2llm_tui.utilization.training import start_training_process

    db = tmp_path / "kb.sqlite"
    # slow replies keep the first run running (42 outcomes, ~60 s) while the spawned process
    # starts, however slowly a busy machine starts it (at latency 2 s it had finished first)
    with StubServer(latency=6.0) as srv:
        a = _train(db, data_dir, srv.base_url)
        try:
            wait_until(lambda: _query(db, "SELECT id FROM train_runs WHERE status='running'"),
                       "the first training run", timeout=300)
            (run_id,), = _query(db, "SELECT id FROM train_runs")
            os.environ.setdefault("OPENAI_API_KEY", "sk-test")
            handle = start_training_process(
                "games", model="openai/stub-model", db_path=str(db), data_dir=str(data_dir),
                api_bases=(srv.base_url,), limit=2, steps=100000, seed=1, resume=False,
                workers=1)
            handle.join(timeout=300)
            handle.poll()
            assert handle.state == "failed", handle.state
            assert f"training run {run_id}" in handle.error and f"process {a.pid}" in \
                handle.error, handle.error
            assert "\n" not in handle.error
        finally:
            _end(a)


# --------------------------------------------------------------------------- one client

def _foreign_claim(db, key, pid, started_at=None) -> None:
    con = sqlite3.connect(str(db), timeout=30)
    try:
        con.execute("INSERT OR REPLACE INTO inflight (key, pid, started_at) VALUES (?,?,?)",
                    [key, pid, time.time() if started_at is None else started_at])
        con.commit()
    finally:
        con.close()


def _drop_claim(db, key) -> None:
    con = sqlite3.connect(str(db), timeout=30)
    try:
        con.execute("DELETE FROM inflight WHERE key=?", [key])
        con.commit()
    finally:
        con.close()


def test_a_client_waits_on_a_live_process_claim_and_takes_over_a_stale_one(workspace):
    """Against a claim held by another live process (a sleeping process's pid): the client
    sends nothing while it is held; serves the reply the holder stores as a cache hit; sends
    itself once the claim is gone without a reply; takes over at once a claim far older than
    any request with its retries; and a stop while waiting answers within a second."""
    import threading

    from re2llm_tui import control
    from re2llm_tui.control import StopRequested
    from re2llm_tui.llm.cache import CallLog, cache_key
    from re2llm_tui.llm.client import LLMClient, LLMResult
    from re2llm_tui.llm.decoding import merge_decoding

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        with StubServer(latency=0.01) as srv, \
                LLMClient(workspace, model="openai/stub-model", api_bases=[srv.base_url],
                          timeout=120.0, retry_base=0.01) as client:
            client.check()

            def ask(text):
                msgs = [{"role": "user", "content": text}]
                key = cache_key(client.model, msgs, merge_decoding(client.temperature,
                                                                   client.seed, {}))
                return msgs, key

            def in_thread(msgs):
                out: dict = {}

                def run():
                    try:
                        out["res"] = client.complete_sync(msgs)
                    except BaseException as exc:  # noqa: BLE001 - reported to the test
                        out["exc"] = exc
                        out["at"] = time.monotonic()
                t = threading.Thread(target=run)
                t.start()
                return t, out

            client.complete_sync([{"role": "user", "content": "warm up"}])
            base = srv.n_requests

            # the holder stores its reply: served from the cache, nothing sent
            msgs, key = ask("stored by the other")
            _foreign_claim(workspace, key, sleeper.pid)
            t, out = in_thread(msgs)
            time.sleep(1.0)
            assert t.is_alive() and srv.n_requests == base
            other = CallLog(workspace)
            other.record(key=key, model=client.model, purpose="chat", run_id=None,
                         request={"messages": msgs}, res=LLMResult(text="the other's reply"))
            other.close()
            _drop_claim(workspace, key)
            t.join(30)
            assert out["res"].text == "the other's reply" and out["res"].cached
            assert srv.n_requests == base and client.stats.cache_hits == 1

            # the holder fails (its claim goes, no reply): this client sends it
            msgs, key = ask("failed at the other")
            _foreign_claim(workspace, key, sleeper.pid)
            t, out = in_thread(msgs)
            time.sleep(1.0)
            assert t.is_alive() and srv.n_requests == base
            _drop_claim(workspace, key)
            t.join(30)
            assert out["res"].ok and not out["res"].cached
            assert srv.n_requests == base + 1

            # a claim far older than a request with all its retries: taken over at once
            msgs, key = ask("abandoned")
            _foreign_claim(workspace, key, sleeper.pid, started_at=time.time() - 1e6)
            res = client.complete_sync(msgs)
            assert res.ok and not res.cached and srv.n_requests == base + 2

            # a stop while waiting answers within a second, and sends nothing
            msgs, key = ask("held for ever")
            _foreign_claim(workspace, key, sleeper.pid)
            t, out = in_thread(msgs)
            time.sleep(1.0)
            assert t.is_alive()
            t0 = time.monotonic()
            control.current().request_stop("stopped by the test")
            t.join(30)
            assert isinstance(out.get("exc"), StopRequested)
            assert out["at"] - t0 < 1.0
            assert srv.n_requests == base + 2
        # only the foreign process's claim is left
        assert _claims(workspace) == [(key, sleeper.pid, _claims(workspace)[0][2])]
    finally:
        sleeper.kill()
        sleeper.wait()


# --------------------------------------------------------------------------- paused holders

def _evaluate(db, data_dir, base) -> subprocess.Popen:
    return _cli("evaluate", "--dataset", "games", "--limit", 1, "--no-oracle",
                "--model", "openai/stub-model", "--api-base", base,
                "--db", db, "--data-dir", data_dir, "--json")


def test_a_paused_job_holds_no_claim(tmp_path, data_dir, monkeypatch):
    """The workbench's evaluation job (a spawned job process, paused through its JobHandle as
    the Evaluation screen does) is paused while it waits out a ``Retry-After`` of one of its
    requests: it gives that claim back, so ``evaluate`` run from a shell on the same workspace
    sends the request itself while the job stays paused (before: it waited for the whole pause,
    or the stale bound of 7 minutes and more); resumed, the job serves that reply from the
    cache -- no prompt is paid twice and no claim is left."""
    from re2llm_tui.evaluation.compare import EvalSpec, run_job
    from re2llm_tui.runtime.jobs import start_job

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    db = tmp_path / "kb.sqlite"
    with StubServer(latency=0.05) as srv:
        srv.retry_after = "50"            # under the client's cap of 60 s: waited out
        srv.inject("429")                 # the job's first request
        spec = EvalSpec(dataset="games", model="openai/stub-model", db_path=str(db),
                        data_dir=str(data_dir), limit=1, oracle=False,
                        llm_options={"api_bases": (srv.base_url,), "timeout": 300.0})
        handle = start_job(run_job, spec, name="evaluate")
        b = None
        try:
            wait_until(lambda: srv.n_faults == 1 and _claims(db),
                       "the job's request refused with a Retry-After", timeout=300)
            handle.pause()
            wait_until(lambda: handle.poll() is not None and handle.state == "paused",
                       "the job to say paused")
            t0 = time.monotonic()
            b = _evaluate(db, data_dir, srv.base_url)
            deadline = t0 + 180.0
            while b.poll() is None and time.monotonic() < deadline:
                handle.poll()
                time.sleep(0.1)
            waited = time.monotonic() - t0
            finished_while_paused = b.poll() is not None and handle.state == "paused"
            print(f"evaluate from the shell: {'finished' if finished_while_paused else 'still waiting'}"
                  f" {waited:.1f} s after it started, the job paused all along")
            handle.resume()
            out, err = b.communicate(timeout=600)
            handle.join(timeout=600)
        finally:
            handle.shutdown()
            if b is not None:
                _end(b)
    assert finished_while_paused, f"evaluate waited {waited:.0f} s on the paused job's claim"
    assert b.returncode == 0, err
    assert "Traceback" not in err
    shell = json.loads(out)
    assert handle.state == "done", (handle.state, handle.error)
    job = handle.result
    # two distinct prompts, each paid once; the only other request is the refused one
    assert len(srv.requests) == 2 and srv.n_requests == 3, srv.requests
    assert shell["llm_calls"] + job["llm_calls"] == 2
    assert job["cache_hits"] >= 1 and shell["llm_calls"] >= 1
    assert shell["failed"] == job["failed"] == 0
    assert _claims(db) == []
