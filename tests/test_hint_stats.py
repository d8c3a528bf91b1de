"""hint_stats: mean reward per hint from the reward table, agent use from the latest finished
training run (greedy histogram, else the last sampled action histogram)."""

from __future__ import annotations

import json

import pytest

from re2llm_tui.kb import hint_stats
from re2llm_tui.store.workspace import open_workspace
from re2llm_tui.utilization.rewards import hint_key

DS = "games"
HINTS = [(3, "Prefer sequels."), (7, "Prefer the same console."), (9, "Never computed.")]


def _outcome(db, session, text, ndcg, *, model="m", context="ctx|rank-by=reply", dataset=DS):
    db.execute("INSERT INTO reward_outcomes (dataset, model, context, session_id, hint_key, "
               "ndcg) VALUES (?,?,?,?,?,?)", [dataset, model, context, session,
                                             hint_key(text), ndcg])


def _run(db, status, hint_ids, *, greedy=None, sampled=None, model="m", step=100):
    summary = json.dumps({"greedy_hist": greedy}) if greedy is not None else None
    cur = db.execute("INSERT INTO train_runs (dataset, model, kb_version, hint_ids, seed, "
                     "total_steps, step, status, summary) VALUES (?,?,?,?,?,?,?,?,?)",
                     [DS, model, "v", json.dumps(hint_ids), 1, 1000, step, status, summary])
    if sampled is not None:
        db.execute("INSERT INTO train_scalars (run_id, step, name, value_json) VALUES "
                   "(?,?,?,?)", [cur.lastrowid, step, "charts/action_hist",
                                 json.dumps(sampled)])
    return cur.lastrowid


@pytest.fixture
def db(workspace):
    db = open_workspace(workspace)
    yield db
    db.conn.close()


def test_mean_reward_is_the_mean_ndcg_gain_over_the_no_hint_outcome(db):
    # (session ids carry their split: train-0001 is a train session, the only split a
    # mean reward for curation reads)
    # s1: no hint .2, hint 3 .5 (+.3), hint 7 .1 (-.1); s2: no hint .4, hint 3 .4 (0)
    _outcome(db, "train-0001", "", 0.2)
    _outcome(db, "train-0001", HINTS[0][1], 0.5)
    _outcome(db, "train-0001", HINTS[1][1], 0.1)
    _outcome(db, "train-0002", "", 0.4)
    _outcome(db, "train-0002", HINTS[0][1], 0.4)
    # no baseline for s3: its hinted outcome has no reward yet
    _outcome(db, "train-0003", HINTS[0][1], 1.0)
    # another model's outcomes are not mixed in when a model is given
    _outcome(db, "train-0001", "", 0.0, model="other")
    _outcome(db, "train-0001", HINTS[1][1], 1.0, model="other")
    # neither are a candidate-order shuffle's outcomes, nor the other rank accounting's
    for ctx in ("ctx|rank-by=reply|order=shuffle0:0", "ctx|rank-by=candidates"):
        _outcome(db, "train-0002", "", 0.0, context=ctx)
        _outcome(db, "train-0002", HINTS[0][1], 1.0, context=ctx)
    stats, use = hint_stats.hint_stats(db, DS, HINTS, model="m")
    assert use is None
    assert stats[3].mean_reward == pytest.approx(0.15) and stats[3].n_rewards == 2
    assert stats[7].mean_reward == pytest.approx(-0.1) and stats[7].n_rewards == 1
    assert stats[9].mean_reward is None and stats[9].n_rewards == 0
    assert all(s.agent_share is None for s in stats.values())
    # without a model filter both models count
    stats, _ = hint_stats.hint_stats(db, DS, HINTS)
    assert stats[7].mean_reward == pytest.approx((-0.1 + 1.0) / 2)


def test_mean_reward_reads_the_train_split_unless_told(db):
    _outcome(db, "train-0001", "", 0.2)
    _outcome(db, "train-0001", HINTS[0][1], 0.5)                  # +.3 on train
    for i in range(3):                                            # -.5 on three test sessions
        _outcome(db, f"test-000{i}", "", 0.5)
        _outcome(db, f"test-000{i}", HINTS[0][1], 0.0)
    stats, _ = hint_stats.hint_stats(db, DS, HINTS, model="m")
    assert stats[3].mean_reward == pytest.approx(0.3) and stats[3].n_rewards == 1
    stats, _ = hint_stats.hint_stats(db, DS, HINTS, model="m", split="test")
    assert stats[3].mean_reward == pytest.approx(-0.5) and stats[3].n_rewards == 3
    stats, _ = hint_stats.hint_stats(db, DS, HINTS, model="m", split=None)
    assert stats[3].mean_reward == pytest.approx((0.3 - 1.5) / 4) and stats[3].n_rewards == 4


def test_an_edited_hint_text_has_no_reward_until_recomputed(db):
    _outcome(db, "train-0001", "", 0.2)
    _outcome(db, "train-0001", "old text", 0.6)
    stats, _ = hint_stats.hint_stats(db, DS, [(3, "new text")], model="m")
    assert stats[3].mean_reward is None


def test_agent_use_is_the_greedy_share_of_the_latest_finished_run(db):
    _run(db, "done", [0, 3, 7], greedy=[0, 10, 0])              # older
    latest = _run(db, "stopped", [0, 3, 7], greedy=[2, 1, 1], step=500)
    _run(db, "running", [0, 3, 7], greedy=None, sampled=[0, 0, 9])  # not finished
    _run(db, "failed", [0, 3, 7], greedy=[0, 0, 4])
    stats, use = hint_stats.hint_stats(db, DS, HINTS, model="m")
    assert use.run_id == latest and use.source == "greedy" and use.step == 500
    assert use.shares[0] == pytest.approx(0.5)
    assert stats[3].agent_share == pytest.approx(0.25)
    assert stats[7].agent_share == pytest.approx(0.25)
    assert stats[9].agent_share is None          # not an action of that run
    # another model's runs are not used
    assert hint_stats.latest_agent_use(db, DS, model="other") is None


def test_agent_use_falls_back_to_the_last_sampled_histogram(db):
    rid = _run(db, "stopped", [0, 3], greedy=None, sampled=[1, 3])
    use = hint_stats.latest_agent_use(db, DS, model="m")
    assert use.run_id == rid and use.source == "sampled"
    assert use.shares == {0: pytest.approx(0.25), 3: pytest.approx(0.75)}


def test_core_module_without_ui_imports():
    import subprocess
    import sys

    code = ("import sys, re2llm_tui.kb.hint_stats; "
            "sys.exit(1 if any(m in sys.modules for m in ('textual', 'rich', 'torch')) else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
