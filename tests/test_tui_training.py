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

from re2llm_tui.datasets import load_sessions
from re2llm_tui.workspace import open_workspace

from stub_server import StubServer
from tui_snapshot_app import DATASET, TuiScript, make_fixture_app

SIZE = (120, 40)
N_SESSIONS = 6
N_EVAL = 3


@pytest.fixture
def stub(data_dir):
    script = TuiScript(load_sessions(DATASET, "train", data_dir)[:N_SESSIONS]
                       + load_sessions(DATASET, "test", data_dir)[:N_EVAL])
    with StubServer(reply_fn=script) as srv:
        yield srv


@pytest.fixture
def train_app(tmp_path, data_dir, monkeypatch, stub):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RE2LLM_DATA", str(data_dir))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")

    def _make(steps: int):
        app, _ = make_fixture_app(
            tmp_path, data_dir, model="openai/stub-model",
            llm_options={"max_retries": 0, "api_bases": [stub.base_url]},
            train_options={"steps": steps, "limit": N_SESSIONS, "log_every": 32,
                           "checkpoint_every": 64, "ppo": {"threads": 1}},
            eval_options={"limit": N_EVAL, "n_boot": 50})
        app.show_demo_notice = False
        return app

    return _make


async def wait_until(pilot, cond, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; notes: "
                                 f"{[n.message for n in pilot.app._notifications]}")
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
        assert app.trainer is not None, [n.message for n in app._notifications]
        assert app.trainer.process.pid != __import__("os").getpid()
        await wait_until(pilot, lambda: app.training_state in ("done", "failed"),
                         what="training to finish")
        assert app.training_state == "done", app.trainer.error
        await pilot.pause(0.6)                       # one more chart tick
        mon = app.monitor
        xs, ys = mon.xy("charts/reward_mean")
        assert xs and max(xs) <= 256 and xs == sorted(xs)
        assert mon.xy("losses/entropy")[1]
        assert isinstance(mon.action_hist, list) and len(mon.action_hist) == len(mon.action_labels)
        assert screen.redraws >= 1
        status = str(screen.query_one("#train-status").content)
        assert "state [b]done[/b]" in status and "step 256" in status
        db = open_workspace(tmp_path / "kb.sqlite")
        run = list(db.query("SELECT * FROM train_runs"))[-1]
        assert run["status"] == "done" and run["step"] == 256
        # evaluate: the table and the NDCG@10 bar chart of every policy
        from re2llm_tui.tui.screens.evaluation import EvaluationScreen

        await pilot.press("5")
        await pilot.pause()
        assert isinstance(app.screen, EvaluationScreen)
        await pilot.press("e")
        await app.workers.wait_for_complete()
        await pilot.pause()
        result = app.last_evaluation
        assert result is not None, [n.message for n in app._notifications]
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
        await wait_until(pilot, lambda: app.monitor.step >= 64, what="64 steps")
        await pilot.press("x")
        await wait_until(pilot, lambda: app.training_state == "stopped", what="stop")
        db = open_workspace(tmp_path / "kb.sqlite")
        run = list(db.query("SELECT * FROM train_runs"))[-1]
        assert run["status"] == "stopped" and Path(run["checkpoint"]).exists()
        stopped_at = run["step"]
        # resume continues the same run from its checkpoint
        first = app.trainer
        await pilot.press("c")
        await wait_until(pilot, lambda: app.trainer is not first and app.trainer.run is not None,
                         what="resumed run")
        assert app.trainer.run["resumed"] and app.trainer.run["run_id"] == run["id"]
        await wait_until(pilot, lambda: app.monitor.step > stopped_at, what="progress")
        handle = app.trainer
    # quitting mid-training stopped the child cleanly and kept the last checkpoint
    assert not handle.is_alive()
    run = list(db.query("SELECT * FROM train_runs WHERE id=?", [run["id"]]))[0]
    assert run["status"] == "stopped" and run["step"] > stopped_at
    assert Path(run["checkpoint"]).exists()
