"""Cost preflight (issue 14.4): ``--dry-run`` on recommend / explore / train / evaluate sends
nothing, needs no key and no local model, subtracts cached calls, counts the real prompts'
tokens with litellm; summaries report the dollars the cache saved; the TUI asks before a
priced model's job starts."""

from __future__ import annotations

import json
import socket
import sqlite3
import statistics

import pytest

from re2llm_tui.data.release import load_sessions
from re2llm_tui.llm.litellm_import import import_litellm
from re2llm_tui.llm.scripted import register_scripted

MODEL = "scripted/preflight"


@pytest.fixture
def offline(monkeypatch):
    """No API key, no network: any socket connect fails the test."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    attempts: list = []

    def refuse(self, address, *a, **k):
        attempts.append(address)
        raise AssertionError(f"a dry run opened a connection to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.fixture
def no_local_model(monkeypatch):
    """Fail if anything loads the embedded llama model."""
    from re2llm_tui.llm import local

    def boom(*a, **k):
        raise AssertionError("a dry run loaded the local model")

    monkeypatch.setattr(local, "get_model", boom)
    monkeypatch.setattr(local.LocalModel, "__init__", boom)


def _rows(path, sql, args=()):
    con = sqlite3.connect(path)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def _calls_in(path) -> int:
    if not path.exists():
        return 0
    return _rows(path, "SELECT COUNT(*) FROM calls")[0][0]


def _reply_for(sessions):
    """Scripted replies: ten real candidate titles of the session whose prompt was sent."""
    by_prompt = {s.prompt.rstrip(): "\n".join(f"{i}. {t}" for i, t in
                                               enumerate(s.candidates[:10], 1))
                 for s in sessions}

    def reply(messages):
        content = messages[-1]["content"]
        for prompt, text in by_prompt.items():
            if content.startswith(prompt):
                return text
        return "1. nothing"

    return reply


# --------------------------------------------------------------------------- the required check

def test_recommend_dry_run_gpt_4o_mini_without_key_or_network(run_cli, workspace, data_dir,
                                                              offline, no_local_model):
    args = ["recommend", "--dry-run", "--model", "gpt-4o-mini", "--dataset", "games",
            "--split", "test", "--limit", "10", "--db", workspace, "--data-dir", data_dir]
    code, out, err = run_cli(*args)
    assert code == 0, err
    assert "Traceback" not in err
    assert "LLM calls" in out and "10" in out and "$" in out
    code, out, err = run_cli(*args, "--json")
    assert code == 0, err
    est = json.loads(out)
    assert est["dry_run"] is True and est["model"] == "gpt-4o-mini"
    assert est["calls"] == 10 and est["to_pay"] == 10 and est["cached"] == 0
    assert est["price_known"] and est["cost"] > 0
    # the dollars follow litellm's price table for the tokens it reports
    litellm = import_litellm()
    p, c = litellm.cost_per_token(model="gpt-4o-mini", prompt_tokens=est["prompt_tokens"],
                                  completion_tokens=est["completion_tokens"])
    assert est["cost"] == pytest.approx(p + c, rel=1e-4)
    assert est["seconds"] > 0
    # max_tokens only bounds a reply; a ranking reply lists 10 titles: the expected length
    # is 10 lines of "i. title" at the mean tokens per line of the sessions' candidates
    from re2llm_tui.data.dataset import Dataset

    sessions = Dataset.resolve("games", data_dir).sessions("test")[:10]
    tokens = lines = 0
    for s in sessions:
        text = "\n".join(f"{i}. {t}" for i, t in enumerate(s.candidates, 1))
        tokens += litellm.token_counter(model="gpt-4o-mini",
                                        messages=[{"role": "assistant", "content": text}])
        lines += len(s.candidates)
    assert est["expected_completion_tokens"] == 10 * round(10 * tokens / lines)
    assert est["expected_completion_tokens"] < est["completion_tokens"]
    p, c = litellm.cost_per_token(model="gpt-4o-mini", prompt_tokens=est["prompt_tokens"],
                                  completion_tokens=est["expected_completion_tokens"])
    assert est["expected_cost"] == pytest.approx(p + c, rel=1e-4) and est["expected_cost"] < \
        est["cost"]
    code, out, err = run_cli(*args)
    assert "expected cost" in out and "at most" in out
    assert offline == []                       # nothing tried to connect
    assert _calls_in(workspace) == 0           # nothing sent, nothing logged


def test_unknown_price_is_said_not_zero(run_cli, workspace, data_dir, offline):
    # a bare name served by an --api-base: litellm has no price for it (and the server is
    # never contacted: port 9 is closed)
    code, out, err = run_cli("recommend", "--dry-run", "--model", "my-served-model",
                             "--api-base", "http://127.0.0.1:9/v1", "--limit", "3",
                             "--db", workspace, "--data-dir", data_dir)
    assert code == 0, err
    assert "price unknown" in out and "$0.0000" not in out
    code, out, err = run_cli("recommend", "--dry-run", "--model", "my-served-model",
                             "--api-base", "http://127.0.0.1:9/v1", "--limit", "3",
                             "--db", workspace, "--data-dir", data_dir, "--json")
    est = json.loads(out)
    assert est["model"] == "openai/my-served-model"
    assert est["cost"] is None and est["price_known"] is False and est["to_pay"] == 3


def test_local_model_costs_nothing_and_has_a_time_estimate(run_cli, workspace, data_dir,
                                                           offline, no_local_model):
    from re2llm_tui.costs.run_plan import MEASURED

    code, out, err = run_cli("recommend", "--dry-run", "--dataset", "games", "--limit", "4",
                             "--db", workspace, "--data-dir", data_dir, "--json")
    assert code == 0, err
    est = json.loads(out)
    assert est["is_local"] and est["cost"] == 0 and est["to_pay"] == 4
    # nothing measured in a fresh workspace: the machine's measured figure per session
    assert est["seconds"] == pytest.approx(4 * MEASURED["games"]["first_s"], abs=0.1)
    assert "local" in est["time_basis"]
    code, out, err = run_cli("recommend", "--dry-run", "--dataset", "games", "--limit", "4",
                             "--db", workspace, "--data-dir", data_dir)
    assert "$0 (local model)" in out


def test_bad_input_is_one_line_exit_2(run_cli, workspace, data_dir, offline):
    code, _out, err = run_cli("recommend", "--dry-run", "--model", "no-such-provider-xyz",
                             "--limit", "2", "--db", workspace, "--data-dir", data_dir)
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "unknown model string" in lines[0]


# --------------------------------------------------------------------------- cache and tokens

def test_dry_run_counts_the_real_prompts_and_subtracts_the_cache(run_cli, workspace, data_dir):
    sessions = load_sessions("games", "test", data_dir)[:4]
    log = register_scripted("scripted", _reply_for(sessions), cost_per_call=0.01)
    args = ["recommend", "--model", MODEL, "--dataset", "games", "--limit", "4",
            "--db", workspace, "--data-dir", data_dir]
    code, out, err = run_cli(*args, "--dry-run", "--json")
    assert code == 0, err
    before = json.loads(out)
    assert before["to_pay"] == 4 and before["cached"] == 0
    assert before["cost"] is None                 # litellm has no price for a test double
    assert len(log) == 0                          # the dry run sent nothing

    code, out, err = run_cli(*args)               # the real command
    assert code == 0, err
    assert len(log) == 4
    litellm = import_litellm()
    sent = sum(litellm.token_counter(model=MODEL, messages=c["messages"]) for c in log.calls)
    assert before["prompt_tokens"] == sent
    assert "cache saved $0.0000 (0 calls)" in " ".join(out.split())

    code, out, err = run_cli(*args, "--dry-run", "--json")
    after = json.loads(out)
    assert after["calls"] == 4 and after["cached"] == 4 and after["to_pay"] == 0
    assert after["cost"] == 0 and after["prompt_tokens"] == 0
    # the real replies now give the completion estimate of a further dry run with a hint
    code, out, err = run_cli(*args, "--hint", "Prefer sequels.", "--dry-run", "--json")
    hinted = json.loads(out)
    measured = [r[0] for r in _rows(workspace, "SELECT completion_tokens FROM calls "
                                               "WHERE cached=0 AND status='ok'")]
    assert hinted["to_pay"] == 4 and len(measured) == 4
    assert hinted["completion_tokens"] == 4 * round(statistics.median(measured))
    assert "median of 4 replies" in hinted["completion_basis"]

    # the rerun is served from the cache, and its summary says what that saved
    code, out, err = run_cli(*args)
    assert code == 0, err
    assert len(log) == 4
    assert "cache saved $0.0400 (4 calls)" in " ".join(out.split())
    code, out, err = run_cli(*args, "--json")
    assert json.loads(out)["cache_saved"] == {"calls": 4, "cost": 0.04}


def test_reward_table_keys_match_the_real_calls(workspace, data_dir):
    """The planned reward-table requests have the keys LLMRewards' calls are cached under:
    with the outcomes removed from the table, a dry run finds every call in the cache."""
    from re2llm_tui.costs import dry_run
    from re2llm_tui.data.dataset import Dataset
    from re2llm_tui.costs.dry_run import dry_client
    from re2llm_tui.kb import KnowledgeBase
    from re2llm_tui.llm.client import LLMClient
    from re2llm_tui.store.workspace import open_workspace
    from re2llm_tui.utilization.rewards import LLMRewards

    ds = Dataset.resolve("games", data_dir)
    sessions = ds.sessions("train")[:2]
    log = register_scripted("scripted", _reply_for(sessions))
    db = open_workspace(workspace)
    _, actions = KnowledgeBase(db, ds).actions()
    client = dry_client(workspace, model=MODEL)
    est = dry_run.train(client, client.workspace(), ds, limit=2)
    assert est.calls == 2 * len(actions) and est.to_pay == est.calls and est.stored == 0
    client.close()

    real = LLMClient(workspace, model=MODEL)
    source = LLMRewards(real, sessions, actions, dataset=ds.name, db=real.workspace())
    source.prefill()
    source.close()
    real.close()
    assert len(log) == 2 * len(actions)
    client = dry_client(workspace, model=MODEL)
    est = dry_run.train(client, client.workspace(), ds, limit=2)
    assert est.stored == 2 * len(actions) and est.calls == 0      # read from the table
    db.execute("DELETE FROM reward_outcomes")
    db.conn.commit()
    est = dry_run.train(client, client.workspace(), ds, limit=2)
    assert est.calls == 2 * len(actions) and est.cached == est.calls and est.to_pay == 0
    client.close()


def test_train_and_evaluate_summaries_report_what_the_cache_saved(run_cli, workspace,
                                                                  data_dir):
    """Outcomes removed from the reward table are asked again and served by the cache: the
    summaries give the cost of the calls that served them."""
    sessions = load_sessions("games", "train", data_dir)[:1]
    log = register_scripted("scripted", _reply_for(sessions), cost_per_call=0.01)
    common = ["--model", MODEL, "--dataset", "games", "--db", workspace, "--data-dir", data_dir]
    train = ["train", "--steps", "64", "--limit", "1", "--seed", "3", "--fresh", *common]
    code, out, err = run_cli(*train, "--json")
    assert code == 0, err
    first = json.loads(out)
    paid = len(log)
    assert first["llm_calls"] == paid and first["cache_saved"] == {"calls": 0, "cost": 0.0}
    con = sqlite3.connect(workspace)
    con.execute("DELETE FROM reward_outcomes")
    con.commit()
    con.close()
    code, out, err = run_cli(*train)
    assert code == 0, err
    assert len(log) == paid                              # nothing sent again
    assert f"cache saved ${paid * 0.01:.4f} ({paid} calls)" in " ".join(out.split())

    evaluate = ["evaluate", "--split", "train", "--limit", "1", "--no-oracle", *common]
    con = sqlite3.connect(workspace)
    con.execute("DELETE FROM reward_outcomes")
    con.commit()
    con.close()
    code, out, err = run_cli(*evaluate, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["llm_calls"] == 0 and len(log) == paid
    hits = data["cache_hits"]
    assert hits >= 2                                     # no hint + random hint, at least
    assert data["cache_saved"] == {"calls": hits, "cost": pytest.approx(hits * 0.01)}
    con = sqlite3.connect(workspace)
    con.execute("DELETE FROM reward_outcomes")
    con.commit()
    con.close()
    code, out, err = run_cli(*evaluate)
    assert code == 0, err
    assert f"cache saved ${hits * 0.01:.4f} ({hits} calls)" in " ".join(out.split())


# --------------------------------------------------------------------------- the other commands

def _actions(workspace, data_dir) -> int:
    from re2llm_tui.data.dataset import Dataset
    from re2llm_tui.kb import KnowledgeBase
    from re2llm_tui.store.workspace import open_workspace

    db = open_workspace(workspace)
    try:
        return len(KnowledgeBase(db, Dataset.resolve("games", data_dir)).actions()[1])
    finally:
        db.conn.close()


def test_train_evaluate_explore_dry_runs_print_call_counts(run_cli, workspace, data_dir,
                                                           offline, no_local_model):
    common = ["--model", "gpt-4o-mini", "--dataset", "games", "--db", workspace,
              "--data-dir", data_dir]
    code, out, err = run_cli("train", "--dry-run", "--limit", "3", *common, "--json")
    assert code == 0, err
    n_actions = _actions(workspace, data_dir)
    train = json.loads(out)
    assert train["calls"] == 3 * n_actions and train["to_pay"] == train["calls"]
    assert train["cost"] > 0 and not train["upper_bound"]
    code, out, err = run_cli("train", "--dry-run", "--limit", "3", "--no-prefill", *common)
    assert code == 0, err
    assert f"{3 * n_actions} (upper bound)" in out

    code, out, err = run_cli("evaluate", "--dry-run", "--limit", "2", *common, "--json")
    assert code == 0, err
    assert json.loads(out)["calls"] == 2 * n_actions            # the oracle needs them all
    code, out, err = run_cli("evaluate", "--dry-run", "--limit", "2", "--no-oracle", *common,
                             "--json")
    assert code == 0, err
    assert json.loads(out)["calls"] == 2 * 2      # no agent trained: no hint + random hint
    code, out, err = run_cli("evaluate", "--dry-run", "--limit", "2", *common)
    assert code == 0 and "LLM calls" in out and "still to pay" in out

    code, out, err = run_cli("explore", "--dry-run", "--sessions", "2", *common, "--json")
    assert code == 0, err
    explore = json.loads(out)
    # at most 1 baseline + 3 turns + 5 hints x (effectiveness + LLM redundancy) per session
    assert explore["upper_bound"] and explore["calls"] == 2 * (4 + 5 * 2)
    assert explore["cost"] > 0
    code, out, err = run_cli("explore", "--dry-run", "--sessions", "2", *common)
    assert "upper bound" in out and "LLM calls" in out
    assert offline == [] and _calls_in(workspace) == 0


# --------------------------------------------------------------------------- the TUI

def _rendered(renderable) -> str:
    import io

    from rich.console import Console

    con = Console(width=200, record=True, file=io.StringIO(), color_system=None)
    con.print(renderable)
    return con.export_text()


async def _wait_for(pilot, cond, timeout: float = 60.0):
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)
        await pilot.pause()


async def test_tui_asks_before_a_priced_training_starts(tmp_path, data_dir, monkeypatch,
                                                        offline):
    from re2llm_tui.tui.app import make_app
    from re2llm_tui.tui.screens.cost_confirm import CostConfirmDialog

    monkeypatch.chdir(tmp_path)
    app = make_app("games", model="gpt-4o-mini", db="kb.sqlite", data_dir=data_dir,
                   train_options={"limit": 2, "steps": 64})
    app.show_demo_notice = False
    started: list = []
    app.training.start = lambda *a, **k: started.append("train")
    app.evaluation.start = lambda *a, **k: started.append("evaluate")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        await pilot.press("s")
        await _wait_for(pilot, lambda: isinstance(app.screen, CostConfirmDialog))
        shown = _rendered(app.screen.query_one("#cost-estimate").content)
        assert "still to pay" in shown and "$" in shown and "gpt-4o-mini" in shown
        assert f"{2 * _actions(tmp_path / 'kb.sqlite', data_dir)}" in shown
        await pilot.press("n")                   # no: nothing starts
        await pilot.pause()
        assert not isinstance(app.screen, CostConfirmDialog) and started == []
        await pilot.press("s")
        await _wait_for(pilot, lambda: isinstance(app.screen, CostConfirmDialog))
        await pilot.press("y")                   # yes: it starts
        await pilot.pause()
        assert started == ["train"]
        await pilot.press("5")
        await pilot.pause()
        await pilot.press("e")
        await _wait_for(pilot, lambda: isinstance(app.screen, CostConfirmDialog))
        await pilot.press("escape")
        await pilot.pause()
        assert started == ["train"]
    assert _calls_in(tmp_path / "kb.sqlite") == 0


async def test_tui_local_model_starts_without_asking(tmp_path, data_dir, monkeypatch):
    from re2llm_tui.tui.app import make_app
    from re2llm_tui.tui.screens.cost_confirm import CostConfirmDialog

    monkeypatch.chdir(tmp_path)
    app = make_app("games", model="local/smollm2-135m", db="kb.sqlite", data_dir=data_dir,
                   train_options={"limit": 2, "steps": 64})
    app.show_demo_notice = False
    started: list = []
    app.training.start = lambda *a, **k: started.append("train")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        await pilot.press("s")
        await pilot.pause()
        assert started == ["train"] and not isinstance(app.screen, CostConfirmDialog)


def test_client_procs_divide_a_remote_runs_time(run_cli, workspace, data_dir, offline,
                                                no_local_model):
    args = ["recommend", "--dry-run", "--model", "gpt-4o-mini", "--dataset", "games",
            "--split", "test", "--limit", "10", "--db", workspace, "--data-dir", data_dir,
            "--json"]
    one = json.loads(run_cli(*args)[1])
    two = json.loads(run_cli(*args, "--client-procs", "2")[1])
    assert two["seconds"] == pytest.approx(one["seconds"] / 2, abs=0.1)   # rounded to 0.1 s
    assert "2 client processes" in two["time_basis"] and two["cost"] == one["cost"]


def test_the_estimate_follows_the_stage_plan(workspace, data_dir, monkeypatch):
    """One plan per stage: the evaluation's estimate prices
    :func:`~re2llm_tui.evaluation.compare.plan_evaluation` and the training's
    :func:`~re2llm_tui.utilization.training.plan_training`, a reflection's walks
    :func:`~re2llm_tui.exploration.turns.next_turn` -- change the plan (here: ask only the
    no-hint outcome, train on one session, stop after two turns) and the estimate follows."""
    from re2llm_tui.costs import dry_run
    from re2llm_tui.costs.dry_run import dry_client
    from re2llm_tui.data.dataset import Dataset
    from re2llm_tui.evaluation import compare
    from re2llm_tui.utilization import training

    ds = Dataset.resolve("games", data_dir)
    register_scripted("scripted", _reply_for(ds.sessions("train")[:2]))
    client = dry_client(workspace, model=MODEL)
    db = client.workspace()
    before = dry_run.evaluate(client, db, ds, limit=3)
    n_actions = len(compare.plan_evaluation(db, client, ds, ds.select("test", limit=3)).actions)
    assert before.calls == 3 * n_actions                      # the oracle asks every action

    plan_evaluation = compare.plan_evaluation

    def no_hint_only(*a, **kw):
        plan = plan_evaluation(*a, **kw)
        plan.needed[:, 1:] = False
        return plan

    monkeypatch.setattr(compare, "plan_evaluation", no_hint_only)
    assert dry_run.evaluate(client, db, ds, limit=3).calls == 3

    before = dry_run.train(client, db, ds, limit=2)
    assert before.calls == 2 * n_actions
    plan_training = training.plan_training
    monkeypatch.setattr(training, "plan_training",
                        lambda db, client, ds, **kw: plan_training(db, client, ds,
                                                                   **{**kw, "limit": 1}))
    assert dry_run.train(client, db, ds, limit=2).calls == n_actions

    # a reflection: the estimate walks exploration's step function (next request given the
    # replies so far); a conversation one turn shorter costs one call less per session
    from re2llm_tui.exploration import turns

    before = dry_run.explore(client, db, ds, sessions=2)
    next_turn = turns.next_turn
    monkeypatch.setattr(turns, "next_turn", lambda s, config, reply, answers: None
                        if len(answers) >= 2 else next_turn(s, config, reply, answers))
    assert dry_run.explore(client, db, ds, sessions=2).calls == before.calls - 2
    client.close()
