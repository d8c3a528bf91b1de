"""Training on a small real slice (games, real sessions, real KB, real MiniLM states) with a
scripted LLM whose hint effects are known: the agent learns to prefer the hint that helps,
each (session, hint) is paid for once, a budget stop resumes on the same curve, a changed KB
is refused, and the spawned-process API (poll / pause / resume / stop / join) works."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from test_rewards import ndcg, scripted_effects

from re2llm_tui.data.dataset import Dataset
from re2llm_tui.data.release import load_sessions
from re2llm_tui.errors import UserError
from re2llm_tui.kb import store as kb
from re2llm_tui.llm.client import LLMClient
from re2llm_tui.llm.scripted import register_scripted
from re2llm_tui.store.workspace import open_workspace
from re2llm_tui.utilization.agent import KBVersionMismatch
from re2llm_tui.utilization.training import (
    TrainSpec,
    checkpoint_dir,
    run_scalars,
    start_training_process,
    train,
)

N = 16
MODEL = "scripted/train"
NON_DETERMINISTIC = {"charts/steps_per_s", "charts/llm_calls", "charts/cache_hits", "charts/cost"}


def helpful_hint_text(data_dir) -> str:
    return load_release_hint(data_dir, 3)


def load_release_hint(data_dir, i: int) -> str:
    from re2llm_tui.data.release import load_release_hints

    return load_release_hints("games", data_dir)[i].strip()


@pytest.fixture
def slice_(data_dir):
    return load_sessions("games", "train", data_dir)[:N]


@pytest.fixture
def scripted(slice_, data_dir):
    """Release hint 3 lifts the target to rank 1; no hint: rank 6; every other hint: absent."""
    good = helpful_hint_text(data_dir)

    def effect(s, hint):
        if hint == "":
            return 6
        return 1 if hint == good else None

    return register_scripted("scripted", scripted_effects(slice_, effect))


def spec(workspace, data_dir, **kw) -> TrainSpec:
    base = dict(dataset="games", model=MODEL, steps=2048, seed=3, db_path=str(workspace),
                data_dir=str(data_dir), limit=N, log_every=256, checkpoint_every=512,
                prefill=False)
    base.update(kw)
    return TrainSpec(**base)


def curve(db, run_id):
    return [(r["step"], r["name"], r["value"]) for r in run_scalars(db, run_id)
            if r["name"] not in NON_DETERMINISTIC]


def test_agent_learns_to_prefer_the_helpful_hint(workspace, data_dir, scripted):
    events = []
    s = train(spec(workspace, data_dir, steps=4096, prefill=True),
              on_event=lambda kind, p: events.append(kind))
    assert s.status == "done" and s.step == 4096 and not s.resumed
    n_actions = len(s.hint_ids)
    assert n_actions == 21 and s.hint_ids[:4] == [0, 1, 2, 3]
    # the whole table was paid for once: every pair exactly one call
    assert s.table_known == s.table_size == N * n_actions
    assert s.llm_calls == len(scripted) == N * n_actions
    assert events[0] == "run" and events[-1] == "scalars"
    # phase 1 (the reward table) shows progress, then phase 2 (PPO) reports scalars
    assert events[1:3] == ["phase", "table"]
    ppo_at = events.index("phase", 2)
    assert set(events[2:ppo_at]) == {"table"} and "scalars" in events[ppo_at:]
    # learning: the greedy policy picks hint 3 for (nearly) every session, and the reward
    # rises above a random policy's
    gain = 1.0 - ndcg(6)
    assert s.best_hint == {"action": 3, "hint_id": 3, "mean_reward": pytest.approx(gain)}
    assert s.random_reward == pytest.approx((gain - 19 * ndcg(6)) / n_actions, abs=1e-6)
    assert s.greedy_hist[3] >= N - 1
    # the choice per session is stored too (the sessions the agent routes to each hint)
    assert len(s.greedy_choices) == N and list(s.greedy_choices.values()).count(3) == \
        s.greedy_hist[3]
    assert s.scalars["charts/eval_reward"] > 0.9 * gain
    assert s.scalars["charts/reward_mean"] > s.random_reward + 0.3
    db = open_workspace(workspace)
    first = [r["value"] for r in run_scalars(db, s.run_id, "charts/reward_mean")]
    assert len(first) == 4096 // 256 and first[-1] > first[0]
    run = list(db.query("SELECT * FROM train_runs WHERE id=?", [s.run_id]))[0]
    assert run["status"] == "done" and run["step"] == 4096 and run["kb_version"] == s.kb_version
    assert json.loads(run["hint_ids"]) == s.hint_ids and Path(run["checkpoint"]).is_file()
    assert Path(run["checkpoint"]).parent == checkpoint_dir(workspace)
    hist = run_scalars(db, s.run_id, "charts/action_hist")
    assert isinstance(hist[-1]["value"], list) and len(hist[-1]["value"]) == n_actions

    # a second run (fresh) costs no LLM call at all and learns the same
    again = train(spec(workspace, data_dir, steps=4096, prefill=True, resume=False))
    assert again.run_id != s.run_id and again.llm_calls == 0 and len(scripted) == N * n_actions
    assert curve(db, again.run_id) == curve(db, s.run_id)


def test_lazy_rewards_pay_only_for_visited_pairs(workspace, data_dir, scripted):
    s = train(spec(workspace, data_dir, steps=1024))
    visited = s.table_known
    assert s.llm_calls == len(scripted) == visited <= N * len(s.hint_ids)
    assert s.cache_hits > 0
    db = open_workspace(workspace)
    calls = [r["value"] for r in run_scalars(db, s.run_id, "charts/llm_calls")]
    assert calls == sorted(calls) and calls[-1] == s.llm_calls


def test_budget_stop_resumes_on_the_same_curve(workspace, data_dir, scripted, tmp_path):
    # the uninterrupted reference, in another workspace (its own cache)
    ref = train(spec(tmp_path / "ref.sqlite", data_dir))
    ref_db = open_workspace(tmp_path / "ref.sqlite")
    assert ref.status == "done"
    n_ref_calls = len(scripted)

    first = train(spec(workspace, data_dir, max_calls=70))
    assert first.status == "stopped" and "max-calls" in first.reason
    assert 0 < first.step < 2048 and len(scripted) - n_ref_calls == 70
    db = open_workspace(workspace)
    run = list(db.query("SELECT * FROM train_runs WHERE id=?", [first.run_id]))[0]
    assert run["status"] == "stopped" and Path(run["checkpoint"]).is_file()

    second = train(spec(workspace, data_dir))
    assert second.resumed and second.run_id == first.run_id and second.status == "done"
    assert second.step == 2048
    # outcomes are paid once across the stop
    assert len(scripted) - n_ref_calls == ref.llm_calls
    assert curve(db, second.run_id) == curve(ref_db, ref.run_id)


def test_a_changed_kb_refuses_the_checkpoint(workspace, data_dir, scripted):
    first = train(spec(workspace, data_dir, max_calls=10))
    assert first.status == "stopped"
    db = open_workspace(workspace)
    kb.KnowledgeBase(db, Dataset.resolve("games")).reject([20])
    with pytest.raises(KBVersionMismatch) as exc:
        train(spec(workspace, data_dir))
    msg = str(exc.value)
    assert f"training run {first.run_id}" in msg and first.kb_version in msg and "--fresh" in msg
    # --fresh trains a new agent on the new action list
    fresh = train(spec(workspace, data_dir, steps=256, resume=False, max_calls=None))
    assert fresh.run_id != first.run_id and len(fresh.hint_ids) == 20


def test_bad_specs_are_user_errors(workspace, data_dir):
    with pytest.raises(UserError, match="steps"):
        train(spec(workspace, data_dir, steps=0))
    with pytest.raises(UserError, match="unknown dataset"):
        train(spec(workspace, data_dir, dataset="books"))
    with pytest.raises(UserError, match="unknown training option"):
        start_training_process("games", nonsense=1)


def test_training_process_polls_pauses_stops_and_resumes(workspace, data_dir, scripted):
    # the reward table is filled here; the spawned process then needs no LLM at all
    with LLMClient(workspace, model=MODEL) as client:
        from re2llm_tui.utilization.rewards import LLMRewards

        db = open_workspace(workspace)
        _, actions = kb.KnowledgeBase(db, Dataset.resolve("games")).actions()
        src = LLMRewards(client, load_sessions("games", "train", data_dir)[:N], actions,
                         dataset="games", db=db)
        src.prefill()
        src.close()
    kw = dict(model=MODEL, db_path=workspace, data_dir=data_dir, limit=N, steps=10**7,
              seed=3, log_every=64, checkpoint_every=10**6)
    handle = start_training_process("games", **kw)
    try:
        records = []
        deadline = time.monotonic() + 120
        while not any(r["name"] == "charts/reward_mean" for r in records):
            assert time.monotonic() < deadline and handle.error is None, handle.error
            records += handle.poll()
            time.sleep(0.1)
        assert handle.state == "running" and handle.run["run_id"] >= 1
        assert {"step", "name", "value"} <= set(records[0])
        handle.pause()
        time.sleep(0.5)
        handle.poll()
        time.sleep(0.5)
        assert handle.poll() == [] and handle.state == "paused"
        handle.resume()
        time.sleep(0.5)
        assert handle.poll()
        handle.stop()
        summary = handle.join(timeout=60)
    finally:
        handle.terminate()
    assert not handle.is_alive()
    assert summary["status"] == "stopped" and handle.state == "stopped"
    assert summary["llm_calls"] == 0
    stopped_at = summary["step"]
    db = open_workspace(workspace)
    run = list(db.query("SELECT * FROM train_runs"))[-1]
    assert run["status"] == "stopped" and run["step"] == stopped_at

    # a new process resumes the stopped run from its checkpoint, to the end
    kw["steps"] = stopped_at + 256
    handle = start_training_process("games", resume=True, **kw)
    summary = handle.join(timeout=120)
    assert summary is not None, handle.error
    assert summary["resumed"] and summary["run_id"] == run["id"]
    assert summary["status"] == "done" and summary["step"] == stopped_at + 256
    steps = [r["step"] for r in handle.poll() if r["name"] == "charts/reward_mean"]
    assert steps and min(steps) > stopped_at


def test_a_failing_process_reports_one_line(workspace, data_dir):
    handle = start_training_process("games", model=MODEL, db_path=workspace,
                                    data_dir=str(data_dir) + "/missing", steps=64)
    assert handle.join(timeout=60) is None
    handle.poll()
    assert handle.state == "failed" and "not found" in handle.error and "\n" not in handle.error


# --------------------------------------------------------------------------- CLI

def test_train_and_evaluate_commands(run_cli, workspace, data_dir, scripted, tmp_path):
    code, out, err = run_cli("train", "--dataset", "games", "--steps", "512", "--limit", N,
                             "--model", MODEL, "--prefill", "--seed", 2, "--db", workspace,
                             "--data-dir", data_dir)
    assert code == 0, err
    assert "training run 1" in out and "best single hint" in out and "LLM" in out
    assert f"{N * 21} calls sent" in out
    code, out, err = run_cli("train", "--dataset", "games", "--steps", "512", "--limit", N,
                             "--model", MODEL, "--prefill", "--seed", 2, "--db", workspace,
                             "--data-dir", data_dir, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["llm_calls"] == 0 and summary["status"] == "done"

    # evaluate on 4 training sessions (their outcomes are all known): no new call
    n_calls = len(scripted)
    report = tmp_path / "eval.md"
    code, out, err = run_cli("evaluate", "--dataset", "games", "--split", "train", "--limit", 4,
                             "--model", MODEL, "--db", workspace, "--data-dir", data_dir,
                             "--out", report)
    assert code == 0, err
    assert len(scripted) == n_calls
    text = report.read_text()
    rows = ("no hint", "agent (argmax)", "random hint", "best train hint", "oracle (upper bound)",
            "content ranker (no LLM)")
    for row in rows:
        assert f"| {row} | 4 |" in text
    assert "HR@10" in out and "oracle" in out          # the printed table (wrapped at 80 cols)
    code, out, err = run_cli("evaluate", "--dataset", "games", "--split", "train", "--limit", 4,
                             "--model", MODEL, "--db", workspace, "--data-dir", data_dir, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert list(data["rows"]) == list(rows) and data["rows"]["no hint"]["n"] == 4
    assert data["llm_calls"] == 0


def test_commands_reject_bad_input_in_one_line(run_cli, workspace, data_dir):
    for args in (["train", "--steps", "0"], ["train", "--dataset", "books"],
                 ["evaluate", "--out", "table.txt"], ["evaluate", "--limit", "0",
                                                      "--model", MODEL]):
        code, out, err = run_cli(*args, "--db", workspace, "--data-dir", data_dir)
        assert code == 2, (args, out, err)
        assert err.startswith("re2llm-tui: error: ") and err.count("\n") == 1, err


def test_a_run_resumes_only_under_its_own_rank_accounting(workspace, data_dir, scripted):
    first = train(spec(workspace, data_dir, steps=10**6, max_calls=5))
    assert first.status == "stopped"
    other = train(spec(workspace, data_dir, steps=64, rank_by="candidates"))
    assert not other.resumed and other.run_id != first.run_id
    same = train(spec(workspace, data_dir, steps=64))
    assert same.resumed and same.run_id == first.run_id
