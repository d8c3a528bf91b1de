"""The reward table computed by several worker processes against a loopback server.

Workers are real spawned processes with their own LLM client; the server is the loopback
OpenAI-compatible stub answering with known hint effects (test_rewards.scripted_effects).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from stub_server import StubServer
from test_rewards import ACTIONS, effect_table, games_slice, ndcg, scripted_effects  # noqa: F401

from re2llm_tui import control as control_mod
from re2llm_tui.control import Control, StopRequested
from re2llm_tui.llm.client import BudgetExceeded, LLMClient
from re2llm_tui.store.workspace import open_workspace
from re2llm_tui.utilization.reward_workers import shard
from re2llm_tui.utilization.rewards import LLMRewards


def _client(workspace, srv, **kw) -> LLMClient:
    kw.setdefault("retry_base", 0.01)
    kw.setdefault("timeout", 60.0)   # generous: a resent request would be paid twice
    kw.setdefault("concurrency", 1)
    return LLMClient(workspace, model="openai/stub-model", api_bases=[srv.base_url], **kw)


def test_shard_keeps_sessions_together_and_balances():
    pairs = [(i, a) for i in range(5) for a in range(4)] + [(5, 0)]
    parts = shard(pairs, 2)
    assert sorted(p for part in parts for p in part) == sorted(pairs)
    owners = {}
    for w, part in enumerate(parts):
        assert part == sorted(part)                        # session-major within a shard
        for i, _ in part:
            assert owners.setdefault(i, w) == w            # one session, one worker
    assert abs(len(parts[0]) - len(parts[1])) <= 4


def test_two_workers_fill_the_table_once(workspace, games_slice):  # noqa: F811
    with StubServer(reply_fn=scripted_effects(games_slice, effect_table)) as srv:
        with _client(workspace, srv) as client:
            src = LLMRewards(client, games_slice, ACTIONS, dataset="games")
            seen = []
            final = src.prefill(progress=seen.append, workers=2, report_every=0)
            table = src.table()
            src.close()
        assert srv.n_requests == 24
    assert final.done == final.total == 24 and final.calls == 24
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    for i, s in enumerate(games_slice):
        for a, (_, text) in enumerate(ACTIONS):
            want = 0.0 if a == 0 else ndcg(effect_table(s, text)) - ndcg(4)
            assert table[i, a] == pytest.approx(want, abs=1e-6)
    db = open_workspace(workspace)
    assert db.execute("SELECT COUNT(*) FROM reward_outcomes").fetchone()[0] == 24
    assert db.execute("SELECT COUNT(*) FROM calls WHERE cached=0").fetchone()[0] == 24


def test_max_calls_holds_across_workers(workspace, games_slice):  # noqa: F811
    with StubServer(reply_fn=scripted_effects(games_slice, effect_table)) as srv:
        with _client(workspace, srv, max_calls=10) as client:
            src = LLMRewards(client, games_slice, ACTIONS, dataset="games")
            with pytest.raises(BudgetExceeded):
                src.prefill(workers=2)
            assert src.known() == 10
            src.close()
        assert srv.n_requests == 10


def test_stop_reaches_every_worker_quickly(workspace, games_slice):  # noqa: F811
    ctl = Control()
    control_mod.install(ctl)
    try:
        with StubServer(latency=0.3,
                        reply_fn=scripted_effects(games_slice, effect_table)) as srv:
            with _client(workspace, srv) as client:
                src = LLMRewards(client, games_slice, ACTIONS, dataset="games")
                asked = []

                def on_progress(p):
                    if p.done >= 4 and not asked:
                        asked.append(time.monotonic())
                        ctl.request_stop("test stop")

                with pytest.raises(StopRequested, match="test stop"):
                    src.prefill(progress=on_progress, workers=2, report_every=0)
                stopped_in = time.monotonic() - asked[0]
                known = src.known()
                src.close()
    finally:
        control_mod.install(Control())
    import multiprocessing

    assert stopped_in < 4.0          # ~1 s asked; slack for a busy machine
    assert not multiprocessing.active_children()     # every worker is gone
    assert 4 <= known < 24
    # what finished is stored; a rerun computes only the rest
    with StubServer(reply_fn=scripted_effects(games_slice, effect_table)) as srv:
        with _client(workspace, srv) as client:
            src = LLMRewards(client, games_slice, ACTIONS, dataset="games")
            assert src.known() == known
            src.prefill(workers=2)
            assert np.isfinite(src.table()).all()
            src.close()
        assert srv.n_requests == 24 - known


def test_workers_keep_the_tables_accounting_and_tag(workspace, games_slice):  # noqa: F811
    """Worker processes store under the parent table's context: its rank accounting and
    its tag (a candidate-order shuffle's outcomes never land under the original's)."""
    with StubServer(reply_fn=scripted_effects(games_slice, effect_table)) as srv:
        with _client(workspace, srv) as client:
            src = LLMRewards(client, games_slice, ACTIONS, dataset="games",
                             rank_by="candidates", context_tag="order=shuffle0:0")
            src.prefill(workers=2)
            assert src.known() == 24
            src.close()
    contexts = {r[0] for r in open_workspace(workspace).execute(
        "SELECT DISTINCT context FROM reward_outcomes")}
    assert contexts == {src.context}
    assert src.context.endswith("|rank-by=candidates|order=shuffle0:0")
