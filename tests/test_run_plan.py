"""Sizing a first run to a time budget from the measured speed (no LLM call is made)."""

from __future__ import annotations

import pytest

from re2llm_tui.data.dataset import Dataset
from re2llm_tui.llm.client import LLMClient
from re2llm_tui.store.workspace import open_workspace
from re2llm_tui.costs.run_plan import (
    MEASURED,
    fmt_duration,
    measured_speed,
    propose,
)


def _client(workspace):
    return LLMClient(workspace, model="local/smollm2-135m")


def test_a_fresh_workspace_gets_a_run_that_fits_the_budget(workspace, data_dir):
    db = open_workspace(workspace)
    with _client(workspace) as client:
        plan = propose(db, client, Dataset.resolve("games"), budget_s=15 * 60)
    assert plan.n_actions == 21
    assert plan.total_s <= 15 * 60 * 1.05
    assert plan.train_sessions >= 4 and plan.eval_sessions >= 5
    assert plan.table_missing == plan.train_sessions * 21
    sp = MEASURED["games"]
    per_session = sp["first_s"] + 20 * sp["reuse_s"]
    assert plan.table_s == pytest.approx(plan.train_sessions * per_session)
    assert plan.full_table_s == pytest.approx(500 * per_session)
    # the oracle (21 actions per test session) does not fit next to the rest
    assert not plan.oracle and plan.oracle_missing == plan.eval_sessions * 17
    text = "\n".join(plan.lines())
    assert "oracle row left out" in text and f"first {plan.train_sessions} of 500" in text


def test_two_workers_propose_a_larger_slice(workspace, data_dir):
    db = open_workspace(workspace)
    with _client(workspace) as client:
        one = propose(db, client, Dataset.resolve("movies"), workers=1)
        two = propose(db, client, Dataset.resolve("movies"), workers=2)
    assert two.train_sessions > one.train_sessions


def test_measured_calls_override_the_defaults(workspace):
    db = open_workspace(workspace)
    # first calls of a session reuse only the chat template's opening tokens
    rows = [("k%d" % i, "local/smollm2-135m", "rank", "ok", 0, 900, 30.0 if i < 5 else 3.0,
             40 if i < 5 else 850) for i in range(12)]
    db.conn.executemany("INSERT INTO calls (key, model, purpose, status, cached, prompt_tokens, "
                        "latency_s, cached_tokens) VALUES (?,?,?,?,?,?,?,?)", rows)
    sp = measured_speed(db, "local/smollm2-135m", "games")
    assert (sp.first_s, sp.reuse_s) == (30.0, 3.0) and "measured here" in sp.source
    # movies prompts are shorter: these games-sized calls do not count for movies
    assert measured_speed(db, "local/smollm2-135m", "movies").first_s == MEASURED["movies"]["first_s"]


def test_durations_read_well():
    assert fmt_duration(42) == "42 s" and fmt_duration(600) == "10 min"
    assert fmt_duration(38 * 3600) == "38.0 h"
