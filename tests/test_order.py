"""Candidate-order sensitivity: shuffled prompts, a position-biased scripted LLM."""

from __future__ import annotations

import re

import numpy as np

from re2llm_tui.data.release import load_sessions, split_pieces, unescape
from re2llm_tui.evaluation.order import order_sensitivity, permuted, shuffles
from re2llm_tui.llm.client import LLMClient
from re2llm_tui.llm.scripted import register_scripted
from re2llm_tui.store.workspace import open_workspace

CAND = re.compile(r"candidate set:\s*(.*?)\.\s*Please recommend", re.S)


def _listed(prompt: str) -> list[str]:
    return [unescape(p) for p in split_pieces(CAND.search(prompt).group(1))]


def _simple(sessions):
    """Sessions whose titles contain no '; ' (their lists split back unambiguously)."""
    return [s for s in sessions if not any("; " in c for c in s.candidates)]


def test_a_shuffled_prompt_lists_the_candidates_in_the_new_order(data_dir):
    sessions = _simple(load_sessions("games", "test", data_dir))[:5]
    (perms,) = shuffles(sessions, 1, seed=7)
    for s, perm in zip(sessions, perms):
        p = permuted(s, perm)
        assert _listed(p.prompt) == list(p.candidates) == [s.candidates[i] for i in perm]
        assert p.candidates[p.target_index] == s.target
        assert p.prompt.split("candidate set:")[0] == s.prompt.split("candidate set:")[0]
    # seeded: the same shuffles again
    assert shuffles(sessions, 1, seed=7) == [perms]


def test_a_position_biased_llm_shows_up_by_position(workspace, data_dir):
    """The scripted LLM lists the first 10 candidates in prompt order: a target listed
    first is always found, one listed last never."""
    sessions = _simple(load_sessions("movies", "test", data_dir))[:12]
    register_scripted("scripted", lambda m: "\n".join(
        f"{i}. {t}" for i, t in enumerate(_listed(m[-1]["content"])[:10], 1)))
    actions = [(0, ""), (1, "Prefer recent films.")]
    n = len(sessions)
    choices = {"no hint": np.zeros(n, dtype=np.int64)}
    original = {"no hint": [1 / np.log2(s.target_index + 2) if s.target_index < 10 else 0.0
                            for s in sessions]}
    with LLMClient(workspace, model="scripted/order") as client:
        rep = order_sensitivity(client, open_workspace(workspace), sessions, actions, choices,
                                dataset="movies", original=original, permutations=4, seed=3)
    row = rep.rows["no hint"]
    assert len(row["per_shuffle"]) == 4 and row["min"] <= row["mean"] <= row["max"]
    pos = row["by_position"]
    assert pos["first tenth (1-5)"]["n"] > 0 and pos["first tenth (1-5)"]["ndcg"] > 0.4
    assert pos["last tenth (46-50)"]["ndcg"] == 0.0
    assert any("first tenth" in line for line in rep.lines())
    # shuffled outcomes are stored apart from the original order's, and a rerun is free
    with LLMClient(workspace, model="scripted/order") as client:
        again = order_sensitivity(client, open_workspace(workspace), sessions, actions,
                                  choices, dataset="movies", original=original,
                                  permutations=4, seed=3)
        assert client.stats.calls == 0
    assert again.rows == rep.rows


def test_evaluate_with_a_sample_and_permutations(workspace, data_dir, run_cli):
    """`evaluate --sample N --seed S --permutations P`: the sample is seeded and stored, the
    order report printed and each (row, shuffle) stored as a run."""
    import json as _json

    register_scripted("scripted", lambda m: "\n".join(
        f"{i}. {t}" for i, t in enumerate(_listed(m[-1]["content"])[:10], 1)))
    args = ("evaluate", "-d", "movies", "--model", "scripted/order", "--db", workspace,
            "--data-dir", data_dir, "--sample", 6, "--seed", 5, "--permutations", 2,
            "--no-oracle", "--json")
    code, out, err = run_cli(*args)
    assert code == 0, err
    res = _json.loads(out)
    assert res["n"] == 6 and res["selection"]["sample"] == 6
    assert res["selection"]["sample_seed"] == 5
    order = res["order"]
    assert order["permutations"] == 2 and "no hint" in order["rows"]
    assert len(order["rows"]["no hint"]["per_shuffle"]) == 2
    db = open_workspace(workspace)
    kinds = [_json.loads(r[0]) for r in db.execute(
        "SELECT params FROM runs WHERE kind='evaluate'")]
    assert sum(1 for p in kinds if "permutation" in p) == 2          # no agent: no hint only
    assert all(p.get("sample") == 6 for p in kinds)
    # the same sample again: nothing paid twice
    code, out2, err = run_cli(*args)
    assert code == 0 and _json.loads(out2)["llm_calls"] == 0
