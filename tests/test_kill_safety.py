"""SIGKILL of the training and evaluation processes: the workspace stays intact and keeps
every outcome they reported as stored; the next run pays only for the rest.

Real processes (the job framework's spawned children) against the loopback stub server.
"""

from __future__ import annotations

import os
import signal

import pytest
from conftest import count_rows, integrity, wait_until
from stub_server import StubServer
from tui_snapshot_app import DATASET, TuiScript

from re2llm_tui.data.release import load_sessions
from re2llm_tui.evaluation.compare import EvalSpec, run_job
from re2llm_tui.runtime.jobs import start_job
from re2llm_tui.utilization.training import TrainSpec, start_training_process, train

N = 5


@pytest.fixture
def server(data_dir):
    script = TuiScript(load_sessions(DATASET, "train", data_dir)[:N]
                       + load_sessions(DATASET, "test", data_dir)[:N])
    with StubServer(latency=0.05, reply_fn=script) as srv:
        yield srv




def _outcomes(path) -> int:
    return count_rows(path, "reward_outcomes")


def _spec(workspace, data_dir, server, **kw):
    base = dict(dataset=DATASET, model="openai/stub-model", db_path=str(workspace),
                data_dir=str(data_dir), api_bases=(server.base_url,), limit=N, steps=256,
                log_every=64, concurrency=1)
    base.update(kw)
    return TrainSpec(**base)


def test_sigkill_of_training_keeps_every_reported_outcome(workspace, data_dir, server,
                                                          monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    handle = start_training_process(spec=_spec(workspace, data_dir, server))
    seen = 0

    def progressed():
        nonlocal seen
        handle.poll()
        if handle.table:
            seen = max(seen, handle.table["done"])
        return seen >= 12

    wait_until(progressed, what="12 outcomes")
    os.kill(handle.process.pid, signal.SIGKILL)
    handle.process.join(10)
    assert integrity(workspace) == "ok"
    kept = _outcomes(workspace)
    assert kept >= seen                       # every outcome reported was committed
    paid = server.n_requests
    # the killed run is resumable and pays only for what was missing
    s = train(_spec(workspace, data_dir, server))
    assert s.status == "done" and s.resumed and s.table_known == s.table_size
    assert server.n_requests - paid == s.table_size - kept


def test_sigkill_of_an_evaluation_keeps_its_outcomes(workspace, data_dir, server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    spec = EvalSpec(dataset=DATASET, model="openai/stub-model", db_path=str(workspace),
                    data_dir=str(data_dir), limit=N, n_boot=50,
                    llm_options={"api_bases": (server.base_url,), "concurrency": 1})
    handle = start_job(run_job, spec, name="evaluate")
    seen = 0

    def progressed():
        nonlocal seen
        for msg in handle.poll():
            if msg.get("event") == "table":
                seen = max(seen, msg["done"])
        return seen >= 8

    wait_until(progressed, what="8 evaluation outcomes")
    os.kill(handle.process.pid, signal.SIGKILL)
    handle.process.join(10)
    assert integrity(workspace) == "ok"
    assert _outcomes(workspace) >= seen
