"""Evaluation on a tiny case whose every number is computed by hand: three test sessions,
two hints, a scripted LLM with a known rank for each (session, action)."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
from conftest import keep_hints_1_and_2
from test_rewards import scripted_effects

from re2llm_tui.data.dataset import Dataset
from re2llm_tui.data.release import load_sessions
from re2llm_tui.errors import UserError
from re2llm_tui.evaluation.compare import (
    AGENT,
    BEST,
    CONTENT,
    NO_HINT,
    ORACLE,
    RANDOM,
    evaluate,
)
from re2llm_tui.kb import store as kb
from re2llm_tui.llm.client import BudgetExceeded, LLMClient
from re2llm_tui.llm.scripted import register_scripted
from re2llm_tui.store.runs import find_runs, run_ranks
from re2llm_tui.store.workspace import open_workspace
from re2llm_tui.utilization.agent import KBVersionMismatch
from re2llm_tui.utilization.training import TrainSpec, train

MODEL = "scripted/eval"
L2 = math.log2


@pytest.fixture
def case(workspace, data_dir):
    """Workspace with a KB of two accepted hints and a scripted LLM of known effects."""
    db = open_workspace(workspace)
    actions = keep_hints_1_and_2(db)
    assert [h for h, _ in actions] == [0, 1, 2]
    h1, h2 = actions[1][1], actions[2][1]
    test = load_sessions("games", "test", data_dir)[:3]
    train_s = load_sessions("games", "train", data_dir)[:8]
    # rank of the target per test session and action (None: not in the top 10)
    test_ranks = {"": [3, None, 1], h1: [1, None, 5], h2: [None, 2, 1]}
    # on train, hint 2 always helps, hint 1 always hurts
    train_ranks = {"": 5, h1: None, h2: 1}
    by_id = {s.id: k for k, s in enumerate(test)}

    def effect(s, hint):
        if s.split == "test":
            return test_ranks[hint][by_id[s.id]]
        return train_ranks[hint]

    log = register_scripted("scripted", scripted_effects(test + train_s, effect))
    return {"db": db, "test": test, "ranks": test_ranks, "actions": actions, "log": log}


def hand_metrics(ranks):
    """HR/NDCG/MRR of a list of ranks, written out."""
    n = len(ranks)
    hr = lambda k: sum(1 for r in ranks if r is not None and r <= k) / n          # noqa: E731
    nd = lambda k: sum(1 / L2(r + 1) for r in ranks if r is not None and r <= k) / n  # noqa: E731
    return {"hr@1": hr(1), "hr@5": hr(5), "hr@10": hr(10), "ndcg@5": nd(5), "ndcg@10": nd(10),
            "mrr@10": sum(1 / r for r in ranks if r is not None and r <= 10) / n}


def trained(workspace, data_dir, steps=512):
    s = train(TrainSpec(dataset="games", model=MODEL, steps=steps, prefill=True,
                        db_path=str(workspace), data_dir=str(data_dir), limit=8, log_every=256))
    assert s.status == "done"
    return s


def test_numbers_equal_a_hand_computation(case, workspace, data_dir):
    summary = trained(workspace, data_dir)
    assert summary.best_hint["hint_id"] == 2
    db = case["db"]
    with LLMClient(workspace, model=MODEL) as client:
        res = evaluate(db, Dataset.resolve("games"), "test", client=client, limit=3, seed=0,
                       n_boot=200)
    assert list(res.rows) == [NO_HINT, AGENT, RANDOM, BEST, ORACLE, CONTENT]
    assert res.n == 3 and res.llm_calls == 3 * 3       # every test (session, action) once

    # by hand, from the rank table of the fixture
    no_hint = [3, None, 1]
    assert res.ranks[NO_HINT] == no_hint
    expect = {"hr@1": 1 / 3, "hr@5": 2 / 3, "hr@10": 2 / 3,
              "ndcg@5": (1 / 2 + 1) / 3, "ndcg@10": (1 / 2 + 1) / 3, "mrr@10": (1 / 3 + 1) / 3}
    assert expect == pytest.approx(hand_metrics(no_hint))
    for m, v in expect.items():
        assert res.rows[NO_HINT][m] == pytest.approx(v)

    # the best train hint is hint 2: ranks [None, 2, 1]
    assert res.ranks[BEST] == [None, 2, 1]
    assert res.rows[BEST]["ndcg@10"] == pytest.approx((1 / L2(3) + 1) / 3)
    assert res.rows[BEST]["hr@1"] == pytest.approx(1 / 3)
    assert res.rows[BEST]["hr@5"] == pytest.approx(2 / 3)
    assert res.paired[BEST]["diff"] == pytest.approx(((0 - 1 / 2) + 1 / L2(3) + 0) / 3)

    # the oracle: s0 hint 1 (rank 1), s1 hint 2 (rank 2), s2 no hint (rank 1; ties: no hint)
    assert res.actions[ORACLE] == [1, 2, 0] and res.ranks[ORACLE] == [1, 2, 1]
    assert res.rows[ORACLE]["hr@1"] == pytest.approx(2 / 3)
    assert res.rows[ORACLE]["hr@5"] == pytest.approx(1.0)
    assert res.rows[ORACLE]["ndcg@10"] == pytest.approx((1 + 1 / L2(3) + 1) / 3)
    assert res.paired[ORACLE]["diff"] == pytest.approx(((1 - 1 / 2) + 1 / L2(3) + 0) / 3)

    # the agent and the random hint: their chosen actions, looked up in the rank table
    texts = [t for _, t in case["actions"]]
    for name in (AGENT, RANDOM):
        ranks = [case["ranks"][texts[a]][i] for i, a in enumerate(res.actions[name])]
        assert res.ranks[name] == ranks
        for m, v in hand_metrics(ranks).items():
            assert res.rows[name][m] == pytest.approx(v)
    assert all(a in (1, 2) for a in res.actions[RANDOM])       # a hint, never "no hint"

    # every row has CIs around its mean; the paired row of "no hint" is itself
    for name, s in res.rows.items():
        for m in ("hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10"):
            lo, hi = s["ci"][m]
            assert lo <= s[m] + 1e-12 and s[m] <= hi + 1e-12
    assert NO_HINT not in res.paired

    # stored as runs, one item per session
    runs = find_runs(db, dataset="games", kind="evaluate")
    assert len(runs) == 6 and set(res.run_ids.values()) == {r["id"] for r in runs}
    ids = [s.id for s in case["test"]]
    for name, rid in res.run_ids.items():
        assert run_ranks(db, rid) == dict(zip(ids, res.ranks[name]))
    stored = {r["name"].split(": ", 1)[1]: r for r in runs}
    assert stored[BEST]["hint_id"] == 2 and stored[NO_HINT]["hint_id"] == 0
    assert stored[CONTENT]["model"] is None and json.loads(stored[ORACLE]["metrics"])["n"] == 3

    # a rerun is served from the reward table: no call
    n_calls = len(case["log"])
    with LLMClient(workspace, model=MODEL) as client:
        again = evaluate(db, Dataset.resolve("games"), "test", client=client, limit=3,
                         seed=0, n_boot=200, store=False)
    assert len(case["log"]) == n_calls and again.llm_calls == 0
    assert again.rows == res.rows


def test_content_ranker_is_cosine_to_the_mean_item_embedding(case, workspace, data_dir):
    from re2llm_tui.embeddings import encode

    db = case["db"]
    with LLMClient(workspace, model=MODEL) as client:
        res = evaluate(db, Dataset.resolve("games"), "test", client=client, limit=3,
                       oracle=False, n_boot=50, store=False)
    assert ORACLE not in res.rows and any("oracle" in n for n in res.notes)
    assert AGENT not in res.rows and any("no trained agent" in n for n in res.notes)
    for s, rank in zip(case["test"], res.ranks[CONTENT]):
        hist = encode(list(s.history), db=db).mean(axis=0)
        cands = encode(list(s.candidates), db=db)
        sims = cands @ (hist / np.linalg.norm(hist))
        top = list(np.argsort(-sims, kind="stable")[:10])
        want = top.index(s.target_index) + 1 if s.target_index in top else None
        assert rank == want
    assert res.rows[CONTENT]["hr@10"] == pytest.approx(
        sum(r is not None for r in res.ranks[CONTENT]) / 3)


def test_exports(case, workspace, data_dir, tmp_path):
    db = case["db"]
    with LLMClient(workspace, model=MODEL) as client:
        res = evaluate(db, Dataset.resolve("games"), "test", client=client, limit=3,
                       n_boot=50, store=False)
    md = res.export(tmp_path / "t.md").read_text()
    assert md.startswith("## games/test: 3 sessions") and "| no hint | 3 |" in md
    rows = list(csv.DictReader(io.StringIO(res.export(tmp_path / "t.csv").read_text())))
    assert [r["policy"] for r in rows] == list(res.rows)
    assert float(rows[0]["ndcg@10"]) == pytest.approx(0.5)
    assert rows[0]["d_ndcg@10"] == "" and rows[-1]["d_ndcg@10"] != ""
    data = json.loads(res.export(tmp_path / "t.json").read_text())
    assert data["rows"]["oracle (upper bound)"]["hr@5"] == pytest.approx(1.0)
    assert data["rows"]["no hint"]["ci"]["ndcg@10"][0] <= 0.5
    with pytest.raises(UserError, match="unknown format"):
        res.export(tmp_path / "t.txt")


def test_an_agent_trained_on_another_kb_is_refused(case, workspace, data_dir):
    trained(workspace, data_dir, steps=256)
    kb.KnowledgeBase(case["db"], Dataset.resolve("games")).reject([1])
    with LLMClient(workspace, model=MODEL) as client:
        with pytest.raises(KBVersionMismatch, match="KB version"):
            evaluate(case["db"], Dataset.resolve("games"), "test", client=client, limit=3)


def test_budget_stop_then_resume_pays_nothing_twice(case, workspace, data_dir):
    db = case["db"]
    with LLMClient(workspace, model=MODEL, max_calls=4, concurrency=1) as client:
        with pytest.raises(BudgetExceeded):
            evaluate(db, Dataset.resolve("games"), "test", client=client, limit=3)
    assert len(case["log"]) == 4
    with LLMClient(workspace, model=MODEL) as client:
        res = evaluate(db, Dataset.resolve("games"), "test", client=client, limit=3)
    assert len(case["log"]) == 9 and res.llm_calls == 5


def test_content_only_needs_no_llm_and_covers_a_whole_split(workspace, data_dir, run_cli):
    import json as _json

    code, out, err = run_cli("evaluate", "-d", "movies", "--split", "train", "--content-only",
                             "--db", workspace, "--data-dir", data_dir, "--json",
                             "--model", "no-such/model")
    assert code == 0, err
    res = _json.loads(out)
    assert res["n"] == 500 and list(res["rows"]) == ["content ranker (no LLM)"]
    row = res["rows"]["content ranker (no LLM)"]
    assert 0 < row["hr@10"] < 1 and row["ci"]["hr@10"][0] < row["hr@10"]
