"""``--client-procs``: a stage's calls made by several spawned client processes against two
loopback servers -- the same results as one process, the budget held across processes,
identical requests sent once, and a SIGKILLed process losing no committed call.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import signal
import sqlite3
import threading
import time

import pytest
from stub_server import StubServer, messages_hash
from test_llm_recommend import _target_first
from test_rewards import ACTIONS, effect_table, scripted_effects

from re2llm_tui.runtime.client_procs import check_client_procs, shard_by_key
from re2llm_tui.data.release import load_sessions
from re2llm_tui.errors import UserError
from re2llm_tui.evaluation.recommend import recommend
from re2llm_tui.llm.client import LLMClient
from re2llm_tui.utilization.rewards import LLMRewards


def _client(workspace, *servers, **kw) -> LLMClient:
    kw.setdefault("retry_base", 0.01)
    kw.setdefault("timeout", 60.0)   # generous: a resent request would be paid twice
    return LLMClient(workspace, model="hosted_vllm/stub-model",
                     api_bases=[s.base_url for s in servers], **kw)


def _paid(*servers) -> collections.Counter:
    out: collections.Counter = collections.Counter()
    for s in servers:
        out.update(s.requests)
    return out


def test_shard_by_key_keeps_equal_keys_together_and_balances():
    keys = ["a", "b", "a", "c", "d", "b", "e", "f"]
    parts = shard_by_key(keys, 3)
    assert sorted(i for p in parts for i in p) == list(range(8))
    owner = {}
    for n, p in enumerate(parts):
        assert p == sorted(p)
        for i in p:
            assert owner.setdefault(keys[i], n) == n
    assert max(map(len, parts)) - min(map(len, parts)) <= 2


def test_client_procs_is_checked(monkeypatch):
    monkeypatch.delenv("RE2LLM_CLIENT_PROCS", raising=False)
    assert check_client_procs(None) == 1
    monkeypatch.setenv("RE2LLM_CLIENT_PROCS", "3")
    assert check_client_procs(None) == 3 and check_client_procs(2) == 2
    with pytest.raises(UserError, match="--client-procs must be >= 1"):
        check_client_procs(0)
    monkeypatch.setenv("RE2LLM_CLIENT_PROCS", "many")
    with pytest.raises(UserError, match="whole number"):
        check_client_procs(None)


def test_recommend_in_two_procs_matches_one(tmp_path, data_dir):
    sessions = load_sessions("games", "test", data_dir)[:12]
    hits = {s.id for s in sessions[::3]}
    # a session twice (another id, the same request): sent once, by one process
    twin = dataclasses.replace(sessions[0], id=sessions[0].id + "-twin")
    sessions = sessions + [twin]
    reply = _target_first(sessions, hits | {twin.id})
    with StubServer(latency=0.02, reply_fn=reply) as a, \
            StubServer(latency=0.02, reply_fn=reply) as b:
        with _client(tmp_path / "one.sqlite", a) as c:
            one = recommend(sessions, c, dataset="games", split="test")
        a.requests.clear()
        a.n_requests = 0
        seen = []
        with _client(tmp_path / "two.sqlite", a, b, concurrency=4) as c:
            two = recommend(sessions, c, dataset="games", split="test", client_procs=2,
                            progress=seen.append)
        paid = _paid(a, b)
        assert a.n_requests > 0 and b.n_requests > 0
    assert two.status == "done" and two.done == 13 and two.failed == 0
    assert two.metrics == one.metrics and two.ranks == one.ranks
    assert sum(paid.values()) == 12 and max(paid.values()) == 1     # the twin was not paid
    assert two.calls + two.cache_hits == 13 and two.calls == 12
    assert seen[-1].done == 13                                      # one summed progress
    con = sqlite3.connect(tmp_path / "two.sqlite")
    n_items, = con.execute("SELECT COUNT(*) FROM run_items WHERE run_id=?",
                           [two.run_id]).fetchone()
    status, = con.execute("SELECT status FROM runs WHERE id=?", [two.run_id]).fetchone()
    con.close()
    assert n_items == 13 and status == "done"


def test_max_calls_holds_across_procs_and_a_rerun_resumes(workspace, data_dir):
    from re2llm_tui.llm.client import SharedBudget  # noqa: F401 - the shared count

    sessions = load_sessions("games", "test", data_dir)[:10]
    reply = _target_first(sessions, set())
    with StubServer(latency=0.02, reply_fn=reply) as a, \
            StubServer(latency=0.02, reply_fn=reply) as b:
        with _client(workspace, a, b, concurrency=2, max_calls=4) as c:
            first = recommend(sessions, c, dataset="games", split="test", client_procs=2)
            assert c.calls_started == 4
        assert first.status == "stopped" and "max-calls 4" in first.stopped_reason
        assert sum(_paid(a, b).values()) == 4 and first.done == 4
        with _client(workspace, a, b, concurrency=2) as c:
            again = recommend(sessions, c, dataset="games", split="test", client_procs=2)
        paid = _paid(a, b)
    assert again.status == "done" and again.resumed and again.done == 10
    assert sum(paid.values()) == 10 and max(paid.values()) == 1      # nothing paid twice


def _committed_hashes(path) -> set[str]:
    con = sqlite3.connect(path)
    try:
        rows = con.execute("SELECT request FROM calls WHERE status='ok' AND cached=0").fetchall()
    finally:
        con.close()
    return {messages_hash(json.loads(r[0])["messages"]) for r in rows}


def test_sigkill_of_one_client_proc_loses_no_committed_call(workspace, data_dir):
    """A reward-table prefill (train --prefill) in 2 client processes against 2 servers; one
    process is SIGKILLed: the prefill ends with one line, every call it committed stays, and
    the rerun pays only for the rest -- none of the committed calls again."""
    import multiprocessing

    sessions = load_sessions("games", "train", data_dir)[:16]
    reply = scripted_effects(sessions, effect_table)
    with StubServer(latency=0.03, reply_fn=reply) as a, \
            StubServer(latency=0.03, reply_fn=reply) as b:
        client = _client(workspace, a, b, concurrency=1)
        src = LLMRewards(client, sessions, ACTIONS, dataset="games")
        outcome: dict = {}

        def run():
            try:
                src.prefill(workers=2, report_every=0)
                outcome["ok"] = True
            except UserError as exc:
                outcome["error"] = str(exc)

        t = threading.Thread(target=run)
        t.start()
        deadline = time.monotonic() + 120
        victim = None
        while victim is None and time.monotonic() < deadline:
            procs = [p for p in multiprocessing.active_children()
                     if p.name == "re2llm-reward-worker"]
            if len(procs) == 2 and sum(_paid(a, b).values()) >= 12:
                victim = procs[0]
            time.sleep(0.02)
        assert victim is not None, "the workers never got going"
        os.kill(victim.pid, signal.SIGKILL)
        t.join(120)
        assert not t.is_alive()
        assert "exited unexpectedly (signal 9)" in outcome.get("error", "")
        src.close()
        client.close()
        committed = _committed_hashes(workspace)
        before = _paid(a, b)
        assert 0 < len(committed) < 64
        # the rerun: every missing outcome, none of the committed calls paid again
        with _client(workspace, a, b, concurrency=2) as client:
            src = LLMRewards(client, sessions, ACTIONS, dataset="games")
            final = src.prefill(workers=2, report_every=0)
            src.close()
        after = _paid(a, b)
    assert final.done == final.total == 64
    rerun = after - before
    assert not set(rerun) & committed
    assert sum(rerun.values()) == 64 - len(committed)
    # at most the killed process's calls in flight (concurrency 1) were paid twice
    assert sum(after.values()) - 64 <= 1


def test_cli_recommend_and_train_take_client_procs(tmp_path, data_dir, run_cli, monkeypatch):
    """``recommend --client-procs 2 --transport fast`` over two servers, then ``train
    --client-procs 2`` (its reward-table prefill in 2 processes): every request paid once."""
    sessions = load_sessions("games", "test", data_dir)[:6]
    train = load_sessions("games", "train", data_dir)[:4]
    monkeypatch.setenv("RE2LLM_TRANSPORT", "auto")     # --transport below sets it again
    ws = tmp_path / "kb.sqlite"
    with StubServer(reply_fn=_target_first(sessions, {sessions[0].id})) as a, \
            StubServer(reply_fn=_target_first(sessions, {sessions[0].id})) as b:
        common = ["--model", "hosted_vllm/stub-model", "--api-base", a.base_url,
                  "--api-base", b.base_url, "--db", ws, "--data-dir", data_dir,
                  "--client-procs", "2"]
        code, out, err = run_cli("recommend", "--limit", 6, "--json", "--transport", "fast",
                                 *common)
        assert code == 0, err
        res = json.loads(out)
        assert res["done"] == 6 and res["calls"] == 6 and res["status"] == "done"
        assert a.n_requests + b.n_requests == 6 and a.n_requests and b.n_requests
        assert os.environ["RE2LLM_TRANSPORT"] == "fast"
        code, out, err = run_cli("recommend", "--limit", 6, "--transport", "warp", *common)
        assert code != 0 and "unknown transport" in err and "Traceback" not in err
        code, out, err = run_cli("recommend", "--limit", 6, *common[:-1], "0")
        assert code != 0 and "--client-procs must be >= 1" in err
    with StubServer(reply_fn=scripted_effects(train, effect_table)) as a, \
            StubServer(reply_fn=scripted_effects(train, effect_table)) as b:
        code, out, err = run_cli("train", "--steps", 64, "--limit", 4, "--json",
                                 "--model", "hosted_vllm/stub-model", "--api-base", a.base_url,
                                 "--api-base", b.base_url, "--db", tmp_path / "t.sqlite",
                                 "--data-dir", data_dir, "--client-procs", "2")
        assert code == 0, err
        paid = _paid(a, b)
        assert a.n_requests and b.n_requests and max(paid.values()) == 1


def test_a_stop_reaches_every_client_proc_and_a_rerun_resumes(workspace, data_dir):
    """Stop (Ctrl+C, the TUI's stop key) while 2 client processes run: the run is stopped
    within seconds with what finished stored; the same command finishes it, paying the rest
    only."""
    from re2llm_tui import control as control_mod

    sessions = load_sessions("games", "test", data_dir)[:24]
    reply = _target_first(sessions, set())
    with StubServer(latency=0.15, reply_fn=reply) as a, \
            StubServer(latency=0.15, reply_fn=reply) as b:
        seen, asked = [], []

        def progress(p):
            seen.append(p.done)
            if p.done >= 4:
                if not control_mod.current().stopped:
                    asked.append(time.monotonic())
                control_mod.current().request_stop("stopped by the test")

        with _client(workspace, a, b, concurrency=1) as c:
            first = recommend(sessions, c, dataset="games", split="test", client_procs=2,
                              progress=progress)
            stopped_in = time.monotonic() - asked[0]
        assert first.status == "stopped" and first.stopped_reason == "stopped by the test"
        # the stop answers within ~1 s (slack for a busy machine; start-up is not timed)
        assert 4 <= first.done < 24 and stopped_in < 5.0, stopped_in
        control_mod.install(control_mod.Control())
        with _client(workspace, a, b, concurrency=2) as c:
            again = recommend(sessions, c, dataset="games", split="test", client_procs=2)
        paid = _paid(a, b)
    assert again.status == "done" and again.resumed and again.done == 24
    # a call in flight when the stop came is finished and stored, never paid twice
    assert sum(paid.values()) == 24 and max(paid.values()) == 1
