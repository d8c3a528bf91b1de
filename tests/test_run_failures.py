"""A run in which nothing worked never ends `done` with exit 0 (issue 19, item 15).

Against the loopback stub server failing every request (HTTP 500, or a reply cut off by its
output limit before any answer -- not retried; a 404 or 400 now stops the run at the first
request, tests/test_reasoning_models.py) or a listener that drops every connection (no request can be sent): recommend,
evaluate, train's reward table, explore and the app's evaluation job exit non-zero with one
line naming the most common error, and their runs are marked `failed`.  Partial failure
(some calls ok) stays `done` with its count of failed calls.
"""

from __future__ import annotations

import socket
import struct
import threading

import pytest
from conftest import db_rows, last_error_line
from stub_server import StubServer

from re2llm_tui.llm.outcomes import CallOutcomes, NothingWorked, check_outcomes, short_error

LINES = {"500": "500 internal error",
         "length": "cut off by the output limit before any answer (lower --reasoning-effort)"}


def _llm(server_url, db, data_dir):
    return ["--model", "hosted_vllm/stub-model", "--api-base", server_url, "--db", db,
            "--data-dir", data_dir]


class DroppingListener:
    """Accepts TCP connections and resets each as soon as a request arrives: the server is
    "reachable" but no request can be sent to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drop, args=(conn,), daemon=True).start()

    def _drop(self, conn) -> None:
        try:
            if conn.recv(1):                               # a request: reset it
                self.accepted += 1
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        conn.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.sock.close()


# --------------------------------------------------------------------------- the helper


def test_the_helper_names_the_most_common_error():
    out = CallOutcomes.of(errors=[
        "NotFoundError: The model `m` does not exist. (HTTP 404 from http://h:1/v1)"] * 3 + [
        'InternalServerError: litellm.InternalServerError: InternalServerError: '
        'Hosted_vllmException - {"error": {"message": "internal error", "type": "server"}}'])
    assert out.nothing_worked() and out.failed == 4
    assert out.line() == "all 4 calls failed (most common: 404 The model `m` does not exist. x3)"
    with pytest.raises(NothingWorked, match=r"x3\); run 7 marked failed$") as exc:
        check_outcomes(out, marked="run 7")
    assert exc.value.exit_code == 1
    # one call that worked: a partial failure, nothing raised
    check_outcomes(CallOutcomes.of(errors=[None, "Timeout: slow"]))
    assert not CallOutcomes.of(errors=[]).nothing_worked()           # nothing tried
    assert short_error("APIConnectionError: litellm.APIConnectionError: Connection "
                       "refused") == "connection error Connection refused"
    assert CallOutcomes.of(ok=0, errors=[], failed=2).line() == \
        "all 2 calls failed (most common: unknown error x2)"


# --------------------------------------------------------------------------- recommend


@pytest.mark.parametrize("mode", ["500", "length"])
def test_recommend_where_every_call_fails_exits_1_and_the_run_is_failed(
        mode, workspace, data_dir, run_cli):
    with StubServer(fail_all=mode) as srv:
        code, out, err = run_cli("recommend", "-n", "3", "--retries", "0",
                                 *_llm(srv.base_url, workspace, data_dir))
        assert srv.n_requests == 3
    assert code == 1, err
    line = last_error_line(err)
    run, = db_rows(workspace, "SELECT id, status, pid, error FROM runs")
    assert line == (f"re2llm-tui: error: all 3 calls failed (most common: {LINES[mode]} x3); "
                    f"run {run['id']} marked failed")
    assert run["status"] == "failed" and run["pid"] is None
    assert run["error"] == f"all 3 calls failed (most common: {LINES[mode]} x3)"
    assert "NDCG" not in out                           # no table of zeros


def test_recommend_with_some_calls_ok_stays_done(workspace, data_dir, run_cli):
    from re2llm_tui.data.release import load_sessions

    first = load_sessions("games", "test", data_dir)[0]
    with StubServer() as srv:
        srv.fail_content(first.prompt.rstrip()[-200:], "500")
        code, out, err = run_cli("recommend", "-n", "3", "--retries", "0", "--json",
                                 *_llm(srv.base_url, workspace, data_dir))
    assert code == 0, err
    import json

    res = json.loads(out)
    assert res["status"] == "done" and res["failed"] == 1 and res["n"] == 3
    run, = db_rows(workspace, "SELECT status, n_failed FROM runs")
    assert run == {"status": "done", "n_failed": 1}


def test_recommend_that_can_send_nothing_exits_1(workspace, data_dir, run_cli):
    """Every connection is dropped: no request reaches a server."""
    with DroppingListener() as srv:
        code, out, err = run_cli("recommend", "-n", "3", "--retries", "0",
                                 *_llm(srv.base_url, workspace, data_dir))
        assert srv.accepted >= 3
    assert code == 1, err
    line = last_error_line(err)
    assert "all 3 calls failed (most common: connection error" in line
    assert "marked failed" in line
    run, = db_rows(workspace, "SELECT status FROM runs")
    assert run["status"] == "failed"


def test_an_unreachable_api_base_is_one_line_before_any_run(workspace, data_dir, run_cli):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                          # nothing listens there
    code, out, err = run_cli("recommend", "-n", "3",
                             *_llm(f"http://127.0.0.1:{port}/v1", workspace, data_dir))
    assert code == 2
    assert "unreachable" in last_error_line(err)
    assert not db_rows(workspace, "SELECT 1 FROM runs WHERE status IN ('done', 'running')")


# --------------------------------------------------------------------------- evaluate


def test_evaluate_where_every_call_fails_cut_off_exits_1(workspace, data_dir, run_cli):
    with StubServer(fail_all="length") as srv:
        code, out, err = run_cli("evaluate", "-n", "2", "--no-oracle",
                                 *_llm(srv.base_url, workspace, data_dir))
        sent = srv.n_requests
    assert code == 1, err
    line = last_error_line(err)
    assert f"all {sent} calls failed (most common: {LINES['length']} x{sent})" in line
    rows = db_rows(workspace, "SELECT id, name, status, error FROM runs WHERE kind='evaluate'")
    llm_rows = [r for r in rows if "content ranker" not in r["name"]]
    assert llm_rows and all(r["status"] == "failed" and "all" in r["error"] for r in llm_rows)
    assert "marked failed" in line and all(str(r["id"]) in line for r in llm_rows)
    assert "NDCG" not in out


def _fast_client(workspace, url):
    from re2llm_tui.llm.client import LLMClient

    return LLMClient(workspace, model="hosted_vllm/stub-model", api_bases=[url],
                     retry_base=0.01, retry_cap=0.02, timeout=30.0)


def test_evaluate_where_every_call_fails_500_raises_and_marks_failed(workspace, data_dir):
    from re2llm_tui.data.dataset import Dataset
    from re2llm_tui.evaluation.compare import evaluate
    from re2llm_tui.store.workspace import open_workspace

    db = open_workspace(workspace)
    with StubServer(fail_all="500") as srv, _fast_client(workspace, srv.base_url) as client:
        with pytest.raises(NothingWorked, match=rf"most common: {LINES['500']} x\d+\); "
                                                "evaluation runs .* marked failed"):
            evaluate(db, Dataset.resolve("games", data_dir), limit=2, oracle=False,
                     client=client, n_boot=50)
    statuses = {r["status"] for r in db_rows(workspace, "SELECT status FROM runs WHERE "
                                                        "model IS NOT NULL")}
    assert statuses == {"failed"}


def test_the_apps_evaluation_job_ends_failed_with_the_line(workspace, data_dir):
    """The job the workbench starts (a spawned process): it ends `failed` with the one
    line, which the app shows as its notification."""
    from re2llm_tui.evaluation.compare import EvalSpec, run_job
    from re2llm_tui.runtime.jobs import start_job

    with StubServer(fail_all="length") as srv:
        spec = EvalSpec(dataset="games", model="hosted_vllm/stub-model",
                        db_path=str(workspace), data_dir=str(data_dir), limit=2, oracle=False,
                        n_boot=50, llm_options={"api_bases": (srv.base_url,)})
        handle = start_job(run_job, spec, name="evaluate")
        handle.join(240)
    assert handle.state == "failed", (handle.state, handle.result)
    assert "calls failed (most common: cut off by the output limit" in handle.error


# --------------------------------------------------------------------------- train


def test_train_where_every_call_fails_cut_off_exits_1(workspace, data_dir, run_cli):
    with StubServer(fail_all="length") as srv:
        code, out, err = run_cli("train", "-n", "2", "--steps", "64",
                                 *_llm(srv.base_url, workspace, data_dir))
        sent = srv.n_requests
    assert code == 1, err
    line = last_error_line(err)
    run, = db_rows(workspace, "SELECT id, status, pid, error FROM train_runs")
    assert line == (f"re2llm-tui: error: all {sent} calls failed (most common: {LINES['length']} "
                    f"x{sent}); training run t{run['id']} marked failed")
    assert run["status"] == "failed" and run["pid"] is None and "calls failed" in run["error"]


@pytest.mark.parametrize("prefill", [True, False])
def test_train_where_every_call_fails_500_fails(workspace, data_dir, prefill):
    from re2llm_tui.utilization.training import TrainSpec, train

    with StubServer(fail_all="500") as srv, _fast_client(workspace, srv.base_url) as client:
        spec = TrainSpec(dataset="games", model="hosted_vllm/stub-model", db_path=str(workspace),
                         data_dir=str(data_dir), limit=2, steps=128, log_every=64,
                         prefill=prefill)
        with pytest.raises(NothingWorked, match=rf"most common: {LINES['500']} x\d+\); "
                                                "training run t1 marked failed"):
            train(spec, client=client)
    run, = db_rows(workspace, "SELECT status, error FROM train_runs")
    assert run["status"] == "failed" and "500 internal error" in run["error"]


# --------------------------------------------------------------------------- explore


def test_explore_where_every_call_fails_exits_1(workspace, data_dir, run_cli):
    with StubServer(fail_all="length") as srv:
        code, out, err = run_cli("explore", "--sessions", "2", "--no-llm-redundancy",
                                 *_llm(srv.base_url, workspace, data_dir))
    assert code == 1, err
    line = last_error_line(err)
    assert line == (f"re2llm-tui: error: all 2 reflections failed (most common: "
                    f"{LINES['length']} x2); 2 reflections marked failed")
    assert [r["status"] for r in db_rows(workspace, "SELECT status FROM reflections")] == \
        ["failed", "failed"]
