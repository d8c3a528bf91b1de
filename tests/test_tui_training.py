"""Training from inside the running app (a spawned process), live charts, stop / resume, quit.

The LLM is a loopback OpenAI-compatible stub (tests/stub_server.py) answering with the
scripted rankings of tui_snapshot_app.TuiScript, so the *spawned* training process reaches
it exactly as it would reach a real server.  Budgets are tiny (a few hundred PPO steps on 6
sessions).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from tui_snapshot_app import DATASET, make_fixture_app, scripted_stub

from re2llm_tui.store.workspace import open_workspace
from re2llm_tui.tui.textual_compat import notifications

SIZE = (120, 40)
N_SESSIONS = 6
N_EVAL = 3


@pytest.fixture
def stub(data_dir):
    with scripted_stub(data_dir, N_SESSIONS, N_EVAL) as srv:
        yield srv


@pytest.fixture
def train_app(tmp_path, data_dir, monkeypatch, stub):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RE2LLM_DATA", str(data_dir))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")

    def _make(steps: int, reuse: bool = False):
        if reuse:                               # the same workspace, a new app (a restart)
            from re2llm_tui.tui.app import make_app

            app = make_app(DATASET, model="openai/stub-model", db="kb.sqlite", data_dir=data_dir,
                           llm_options={"max_retries": 0, "api_bases": [stub.base_url]},
                           train_options={"steps": steps, "limit": N_SESSIONS, "log_every": 32,
                                          "checkpoint_every": 64, "ppo": {"threads": 1}})
            app.show_demo_notice = False
            app.preflight.ask = False      # the confirmation: tests/test_preflight.py
            return app
        app, _ = make_fixture_app(
            tmp_path, data_dir, model="openai/stub-model",
            llm_options={"max_retries": 0, "api_bases": [stub.base_url]},
            train_options={"steps": steps, "limit": N_SESSIONS, "log_every": 32,
                           "checkpoint_every": 64, "ppo": {"threads": 1}},
            eval_options={"limit": N_EVAL, "n_boot": 50})
        app.show_demo_notice = False
        app.preflight.ask = False          # the confirmation: tests/test_preflight.py
        return app

    return _make


async def wait_until(pilot, cond, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; notes: "
                                 f"{[n.message for n in notifications(pilot.app)]}")
        await asyncio.sleep(0.2)
        await pilot.pause()


async def test_train_then_evaluate_from_the_running_app(train_app, tmp_path):
    """Train a few steps in the spawned process (live charts), then evaluate (worker)."""
    from re2llm_tui.tui.screens.training import TrainingScreen

    app = train_app(steps=256)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TrainingScreen)
        await pilot.press("s")
        assert app.training.handle is not None, [n.message for n in notifications(app)]
        assert app.training.handle.process.pid != __import__("os").getpid()
        await wait_until(pilot, lambda: app.training.state in ("done", "failed"),
                         what="training to finish")
        assert app.training.state == "done", app.training.handle.error
        await pilot.pause(0.6)                       # one more chart tick
        mon = app.training.monitor
        xs, ys = mon.xy("charts/reward_mean")
        assert xs and max(xs) <= 256 and xs == sorted(xs)
        assert mon.xy("losses/entropy")[1]
        assert isinstance(mon.action_hist, list) and len(mon.action_hist) == len(mon.action_labels)
        assert screen.redraws >= 1
        status = str(screen.query_one("#train-status").content)
        assert "state done" in status and "step 256/256" in status
        db = open_workspace(tmp_path / "kb.sqlite")
        run = list(db.query("SELECT * FROM train_runs"))[-1]
        assert run["status"] == "done" and run["step"] == 256
        # evaluate: the table and the NDCG@10 bar chart of every policy
        from re2llm_tui.tui.screens.evaluation import EvaluationScreen

        await pilot.press("5")
        await pilot.pause()
        assert isinstance(app.screen, EvaluationScreen)
        await pilot.press("e")
        assert app.evaluation.handle is not None and app.evaluation.handle.pid != __import__("os").getpid()
        await wait_until(pilot, lambda: app.evaluation.result is not None, what="evaluation")
        await pilot.pause()
        result = app.evaluation.result
        assert result is not None, [n.message for n in notifications(app)]
        assert "no hint" in result.rows and "agent (argmax)" in result.rows
        assert all(r["n"] == N_EVAL for r in result.rows.values())
        table = app.screen.query_one("#eval-table").content
        import io

        from rich.console import Console

        con = Console(width=250, record=True, file=io.StringIO(), color_system=None)
        con.print(table)
        text = con.export_text()
        for policy in result.rows:
            assert policy in text
        stored = list(db.query("SELECT * FROM runs WHERE kind='evaluate'"))
        assert len(stored) >= len(result.rows) - 1   # every LLM row is stored as a run


async def test_stop_then_resume_and_quit_keeps_the_checkpoint(train_app, tmp_path):
    from pathlib import Path

    app = train_app(steps=200_000)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await pilot.press("s")
        await wait_until(pilot, lambda: app.training.monitor.step >= 64, what="64 steps")
        t0 = time.monotonic()
        await pilot.press("x")
        await wait_until(pilot, lambda: app.training.state == "stopped", what="stop")
        assert time.monotonic() - t0 < 2.5           # stop answers within 2 s
        db = open_workspace(tmp_path / "kb.sqlite")
        run = list(db.query("SELECT * FROM train_runs"))[-1]
        assert run["status"] == "stopped" and Path(run["checkpoint"]).exists()
        stopped_at = run["step"]
        # resume continues the same run from its checkpoint
        first = app.training.handle
        await pilot.press("c")
        await wait_until(pilot, lambda: app.training.handle is not first and app.training.handle.run is not None,
                         what="resumed run")
        assert app.training.handle.run["resumed"] and app.training.handle.run["run_id"] == run["id"]
        await wait_until(pilot, lambda: app.training.monitor.step > stopped_at, what="progress")
        handle = app.training.handle
    # quitting mid-training stopped the child cleanly and kept the last checkpoint
    import multiprocessing

    assert not handle.is_alive() and not multiprocessing.active_children()
    run = list(db.query("SELECT * FROM train_runs WHERE id=?", [run["id"]]))[0]
    assert run["status"] == "stopped" and run["step"] > stopped_at
    assert Path(run["checkpoint"]).exists()


async def test_pause_stops_spending_within_two_seconds(train_app, stub, tmp_path):
    stub.latency = 0.2                       # a call takes a while: phase 1 lasts
    app = train_app(steps=2048)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await pilot.press("s")
        await wait_until(pilot, lambda: app.training.phase == "table"
                         and app.training.monitor.latest.get("table/done", 0) >= 3, what="phase 1")
        screen = app.screen
        assert "reward table" in screen._status_text and "phase 1/2" in screen._status_text
        t0 = time.monotonic()
        await pilot.press("p")
        await wait_until(pilot, lambda: app.training.state == "paused", what="paused")
        paused_in = time.monotonic() - t0
        await pilot.pause(0.5)                  # an in-flight call may still finish
        n = stub.n_requests
        await pilot.pause(2.0)
        assert stub.n_requests == n, "a paused run kept sending requests"
        assert paused_in < 4.0                # ~1 s asked; slack for a busy machine
        await pilot.press("c")
        await wait_until(pilot, lambda: stub.n_requests > n, what="resumed spending")
        assert app.training.state == "running"
        t0 = time.monotonic()
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, timeout=10, what="quit")
    import multiprocessing

    assert time.monotonic() - t0 < 4.0 and not multiprocessing.active_children()
    db = open_workspace(tmp_path / "kb.sqlite")
    run = list(db.query("SELECT * FROM train_runs"))[-1]
    assert run["status"] == "stopped"           # resumable, never left 'running'


async def test_quit_during_an_evaluation_leaves_no_process(train_app, stub, tmp_path):
    import multiprocessing

    stub.latency = 0.5
    app = train_app(steps=256)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        await pilot.press("e")
        await wait_until(pilot, lambda: app.evaluation.progress is not None
                         and app.evaluation.progress["calls"] >= 1, what="evaluation calls")
        assert "outcomes" in str(app.screen.query_one("#eval-status").content)
        handle = app.evaluation.handle
        await pilot.press("q")
        await wait_until(pilot, lambda: not handle.is_alive(), timeout=5, what="eval stop")
    n = stub.n_requests
    time.sleep(1.5)
    assert stub.n_requests == n and not multiprocessing.active_children()


async def test_a_run_whose_process_died_is_offered_for_resume(train_app, tmp_path):
    """A killed app leaves its run 'running' with a dead pid: the next app offers it."""
    app = train_app(steps=100_000)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await pilot.press("s")
        await wait_until(pilot, lambda: app.training.monitor.step >= 64, what="64 steps")
        app.training.handle.job.process.kill()          # as if the app had been killed with it
        app.training.handle.job.process.join(5)
    db = open_workspace(tmp_path / "kb.sqlite")
    run = list(db.query("SELECT * FROM train_runs"))[-1]
    assert run["status"] == "running"           # nobody could mark it
    app2 = train_app(steps=100_000, reuse=True)
    async with app2.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await pilot.pause()
        status = str(app2.screen.query_one("#train-status").content)
        assert f"run {run['id']} (its process is gone)" in status and "c resumes" in status
        await pilot.press("c")
        await wait_until(pilot, lambda: app2.training.handle is not None and app2.training.handle.run is not None,
                         what="resumed run")
        assert app2.training.handle.run["resumed"] and app2.training.handle.run["run_id"] == run["id"]
