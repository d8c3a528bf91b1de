"""The workbench's job controls without Textual: no app runs, no screen is mounted.

:class:`~re2llm_tui.tui.controls.TrainingControl` and
:class:`~re2llm_tui.tui.controls.EvaluationControl` are driven through a recording host (the
part of the app they talk to: post a message, notify, open a workspace connection).  The
host hands the posted messages back to the controls in the test's thread, as the app does on
its UI thread.  The training and evaluation processes are real (spawned), the workspace is a
real SQLite file, the LLM a loopback stub server answering scripted rankings.
"""

from __future__ import annotations

import multiprocessing
import queue
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tui_snapshot_app import DATASET, build_workspace, scripted_stub

from re2llm_tui.data.dataset import Dataset
from re2llm_tui.kb import KnowledgeBase
from re2llm_tui.store.workspace import open_workspace
from re2llm_tui.tui.config import AppConfig
from re2llm_tui.tui.controls import CostPreflight, EvaluationControl, TrainingControl
from re2llm_tui.tui.messages import (
    CostEstimated,
    EvaluationFinished,
    EvaluationProgress,
    PlanProposed,
    TrainingProgress,
    TrainingStateChanged,
)

N_SESSIONS = 6
N_EVAL = 3


class RecordingHost:
    """The app as the controls see it: messages are queued (any thread) and handed back to
    the controls by :meth:`pump`, in the test's thread, as the app's handlers do."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.db = open_workspace(config.db_path)
        self.messages: queue.Queue = queue.Queue()
        self.seen: list = []
        self.notes: list[tuple[str, str]] = []
        self.training: TrainingControl | None = None
        self.evaluation: EvaluationControl | None = None
        self.evaluated_plans: list = []

    def post_message(self, message) -> bool:
        self.messages.put(message)
        return True

    def notify(self, message, *, title="", severity="information", timeout=None) -> None:
        self.notes.append((severity, str(message)))

    def call_from_thread(self, fn, *args):
        return fn(*args)

    def open_db(self):
        return open_workspace(self.config.db_path)

    def kb(self, db=None):
        return KnowledgeBase(self.db if db is None else db, self.config.ds)

    def llm(self):  # pragma: no cover - the tests here never size a demo-model run
        raise AssertionError("no LLM client in these tests")

    def pump(self) -> None:
        while True:
            try:
                m = self.messages.get_nowait()
            except queue.Empty:
                return
            self.seen.append(m)
            if isinstance(m, TrainingProgress):
                self.training.apply_progress(m)
            elif isinstance(m, TrainingStateChanged):
                plan = self.training.apply_state(m)
                if plan is not None:
                    self.evaluated_plans.append(plan)
            elif isinstance(m, EvaluationProgress):
                self.evaluation.apply_progress(m)
            elif isinstance(m, EvaluationFinished):
                self.evaluation.apply_finished(m)

    def wait(self, cond, timeout: float = 180.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            if cond():
                return
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.notes}"
            time.sleep(0.05)


@pytest.fixture
def stub(data_dir):
    with scripted_stub(data_dir, N_SESSIONS, N_EVAL) as srv:
        yield srv


@pytest.fixture
def host(tmp_path, data_dir, monkeypatch, stub):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    build_workspace(tmp_path / "kb.sqlite", data_dir)
    config = AppConfig(
        ds=Dataset.resolve(DATASET, data_dir), model="openai/stub-model",
        db_path=tmp_path / "kb.sqlite",
        llm_options={"max_retries": 0, "api_bases": [stub.base_url]},
        train_options={"steps": 256, "limit": N_SESSIONS, "log_every": 32,
                       "checkpoint_every": 64, "ppo": {"threads": 1}},
        eval_options={"limit": N_EVAL, "n_boot": 50})
    h = RecordingHost(config)
    h.training = TrainingControl(h)
    h.evaluation = EvaluationControl(h)
    yield h
    h.training.close()
    h.evaluation.close()
    for c in (h.training, h.evaluation):
        if c.is_running():
            c.handle.shutdown(2.0)
    h.db.conn.close()


def test_the_controls_import_no_textual_app_screen_or_widget():
    code = ("import sys, re2llm_tui.tui.controls;"
            "bad = [m for m in ('textual.app', 'textual.screen', 'textual.widget',"
            " 're2llm_tui.tui.app', 're2llm_tui.tui.screens') if m in sys.modules];"
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stdout + out.stderr


def test_training_runs_to_done_and_a_proposed_run_is_handed_to_evaluation(host):
    """Start, watch (scalars and states reach the monitor through posted messages), finish;
    a finished proposed run is returned for evaluation, and the evaluation control runs it
    to its table."""
    from types import SimpleNamespace

    t = host.training
    assert t.status_line().startswith("state idle")
    plan = SimpleNamespace(train_sessions=N_SESSIONS, steps=256, log_every=32, n_actions=0,
                           eval_sessions=N_EVAL, oracle=False, oracle_missing=7, oracle_s=60.0)
    t.start(plan=plan)
    assert t.handle is not None and t.handle.process.pid != multiprocessing.current_process().pid
    assert t.state == "starting"
    host.wait(lambda: t.state in ("done", "failed"), what="training done")
    assert t.state == "done", t.handle.error
    assert any(isinstance(m, TrainingProgress) for m in host.seen)
    states = [m.state for m in host.seen if isinstance(m, TrainingStateChanged)]
    assert states[-1] == "done" and "running" in states
    assert t.monitor.step >= 256 and t.monitor.xy("charts/reward_mean")[0]
    assert t.status_line().startswith("state done") and "step 256/256" in t.status_line()
    assert host.evaluated_plans == [plan] and t.plan is None   # handed over exactly once

    e = host.evaluation
    e.start(plan=plan)
    assert "oracle row left out: it needs 7 more outcomes" in e.note
    host.wait(lambda: e.result is not None or e.state == "failed", what="evaluation")
    assert e.result is not None, host.notes
    assert {"no hint"} <= {k.lower() for k in e.result.rows}
    assert e.state == "done"
    host.wait(lambda: not e.is_running(), timeout=30, what="evaluation process exit")


def test_stop_then_resume_continues_the_same_run(host):
    t = host.training
    t.config.train_options["steps"] = 100_000
    t.start()
    host.wait(lambda: t.monitor.step >= 64, what="64 steps")
    t.stop()
    host.wait(lambda: t.state == "stopped", what="stopped")
    first = t.handle
    run_id = first.run["run_id"]
    host.wait(lambda: not first.is_alive(), timeout=30, what="process exit")
    assert t.resumable_run is not None and t.resumable_run["id"] == run_id
    assert f"run {run_id}" in t.status_line() and "c resumes" in t.status_line()
    t.resume()                      # no preflight given: starts at once
    host.wait(lambda: t.handle is not first and t.handle.run is not None, what="resumed")
    assert t.handle.run["resumed"] and t.handle.run["run_id"] == run_id
    t.pause()
    host.wait(lambda: t.state == "paused", what="paused")
    t.resume()
    assert t.state in ("running", "resuming")
    t.stop()
    host.wait(lambda: t.state == "stopped", what="stopped again")


def test_a_start_that_fails_is_one_notification_and_no_handle(host):
    host.config.train_options["nonsense_option"] = 1
    host.training.start()
    assert host.training.handle is None and host.training.state == "idle"
    assert host.notes[-1][0] == "error" and "nonsense_option" in host.notes[-1][1]


def test_the_preflight_posts_the_estimate_and_starts_nothing(host):
    """A priced model: the estimate is posted (the app asks the user); nothing is sent."""
    pre = CostPreflight(host)
    started: list = []
    host.training.preflight = pre
    host.training.propose()
    host.wait(lambda: any(isinstance(m, CostEstimated) for m in host.seen), timeout=120,
              what="estimate")
    est = next(m for m in host.seen if isinstance(m, CostEstimated))
    assert est.command == "train" and est.estimate.model == "openai/stub-model"
    assert host.training.handle is None and started == []
    assert not any(isinstance(m, PlanProposed) for m in host.seen)
    rows = list(host.db.query("SELECT COUNT(*) AS n FROM calls"))
    assert rows[0]["n"] == 0                      # an estimate pays for nothing


def test_run_samples_reaches_the_training_and_the_evaluation(host):
    """``run --samples 2``: the workbench's training run and evaluation average 2 samples
    of every request (the spec, the run's config, the requests the server saw)."""
    import json

    host.config.samples = 2
    t, e = host.training, host.evaluation
    t.config.train_options.update(steps=64, limit=2)
    t.start()
    host.wait(lambda: t.state in ("done", "failed"), what="training done")
    assert t.state == "done", t.handle.error
    cfg = json.loads(list(host.db.query("SELECT config FROM train_runs"))[-1]["config"])
    assert cfg["samples"] == 2
    rows = list(host.db.query("SELECT context, samples FROM reward_outcomes"))
    assert rows and all(r["context"].endswith("|samples=2") and len(json.loads(r["samples"])) == 2
                        for r in rows)
    e.config.eval_options.update(limit=1)
    e.start()
    host.wait(lambda: e.result is not None or e.state == "failed", what="evaluation")
    assert e.result is not None, host.notes
    params = [json.loads(r["params"]) for r in host.db.query(
        "SELECT params FROM runs WHERE kind='evaluate'")]
    contexts = [p["context"] for p in params if "context" in p]
    assert contexts and all(c.endswith("|samples=2") for c in contexts)
