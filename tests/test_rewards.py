"""The reward table: r(s, h) = NDCG@10 with h - NDCG@10 without, from the LLM client's calls,
stored in the workspace so that each (session, hint) pair is paid for once.

The LLM is a scripted test double (litellm custom provider) whose hint effects are known:
:func:`scripted_effects` lists the target at a chosen rank for each (session, hint text).
Other test modules import the helpers from here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from replies import prompt_reader

from re2llm_tui.data.release import load_sessions
from re2llm_tui.llm.client import BudgetExceeded, LLMClient
from re2llm_tui.llm.scripted import register_scripted
from re2llm_tui.store.workspace import open_workspace
from re2llm_tui.utilization.rewards import LLMRewards, hint_key


def scripted_effects(sessions, effect):
    """A scripted reply function: for a prompt of ``sessions`` with hint text ``hint`` ('' for
    none), the target is listed at rank ``effect(session, hint)`` (``None``: not listed)
    among 10 titles; unknown prompts get an unusable reply."""
    read = prompt_reader(sessions)

    def reply(messages):
        s, hint = read(messages)
        if s is None:
            return "I cannot help with that."
        rank = effect(s, hint)
        titles = [c for i, c in enumerate(s.candidates) if i != s.target_index][:10]
        if rank is not None:
            titles.insert(rank - 1, s.target)
        return "\n".join(f"{i}. {t}" for i, t in enumerate(titles[:10], 1))

    return reply


def ndcg(rank):
    return 1 / math.log2(rank + 1) if rank is not None and rank <= 10 else 0.0


ACTIONS = [(0, ""), (1, "Focus on the series the user plays."), (2, "Prefer the newest titles."),
           (3, "Think about the platform.")]


def effect_table(s, hint):
    """rank of the target: no hint 4; hint 1 lifts it to 1; hint 2 drops it; hint 3: rank 2
    on even sessions, absent on odd ones."""
    if hint == "":
        return 4
    if hint == ACTIONS[1][1]:
        return 1
    if hint == ACTIONS[2][1]:
        return None
    return 2 if s.index % 2 == 0 else None


@pytest.fixture
def games_slice(data_dir):
    return load_sessions("games", "train", data_dir)[:6]


def test_rewards_are_ndcg_differences_and_paid_once(workspace, games_slice):
    log = register_scripted("scripted", scripted_effects(games_slice, effect_table))
    with LLMClient(workspace, model="scripted/rl") as client:
        src = LLMRewards(client, games_slice, ACTIONS, dataset="games")
        assert src.known() == 0 and src.n_actions == 4
        sess = np.array([0, 1, 2, 3, 0, 1])
        acts = np.array([1, 2, 3, 3, 0, 1])
        r = src.rewards(sess, acts)
        expect = [ndcg(effect_table(games_slice[i], ACTIONS[a][1])) - ndcg(4) if a else 0.0
                  for i, a in zip(sess, acts)]
        assert r == pytest.approx(expect, abs=1e-6)
        assert r[0] == pytest.approx(1 - 1 / math.log2(5))        # hint 1: rank 4 -> 1
        assert r[1] == pytest.approx(-1 / math.log2(5))           # hint 2: rank 4 -> absent
        # the no-hint outcomes of sessions 0..3 and 5 distinct hint outcomes; "no hint" (0, 0)
        # itself needs no reward call
        assert len(log) == 4 + 5 == src.stats()["llm_calls"]
        # the same pairs again: no call at all
        again = src.rewards(sess, acts)
        assert list(again) == list(r) and len(log) == 9
        assert src.stats()["cache_hits"] >= len(sess)
        src.close()
    # a new process/source reads the stored table: still no call
    with LLMClient(workspace, model="scripted/rl") as client:
        src2 = LLMRewards(client, games_slice, ACTIONS, dataset="games")
        assert src2.known() == 9
        assert list(src2.rewards(sess, acts)) == list(r)
        assert len(log) == 9 and src2.stats()["llm_calls"] == 0
        src2.close()
    db = open_workspace(workspace)
    rows = list(db.query("SELECT * FROM reward_outcomes ORDER BY session_id, hint_key"))
    assert len(rows) == 9
    base = [x for x in rows if x["hint_key"] == ""]
    assert {x["target_rank"] for x in base} == {4}
    assert {x["hint_key"] for x in rows} == {"", hint_key(ACTIONS[1][1]), hint_key(ACTIONS[2][1]),
                                             hint_key(ACTIONS[3][1])}


def test_prefill_fills_the_whole_table_with_known_effects(workspace, games_slice):
    log = register_scripted("scripted", scripted_effects(games_slice, effect_table))
    seen = []
    with LLMClient(workspace, model="scripted/rl", concurrency=4) as client:
        src = LLMRewards(client, games_slice, ACTIONS, dataset="games")
        final = src.prefill(progress=seen.append, report_every=0)
        table = src.table()
        src.close()
    assert final.done == final.total == 6 * 4 and len(log) == 24 == final.calls
    assert seen[0].done == 0 and seen[-1].done == 24
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    for i, s in enumerate(games_slice):
        for a, (_, text) in enumerate(ACTIONS):
            want = 0.0 if a == 0 else ndcg(effect_table(s, text)) - ndcg(4)
            assert table[i, a] == pytest.approx(want, abs=1e-6)
    # the best action per session is what the scripted effects say
    assert list(table.argmax(axis=1)) == [1] * 6
    # prefill again: nothing to do
    with LLMClient(workspace, model="scripted/rl") as client:
        src = LLMRewards(client, games_slice, ACTIONS, dataset="games")
        assert src.prefill().calls == 0 and len(log) == 24
        src.close()


def test_budget_stop_keeps_finished_outcomes_and_resumes(workspace, games_slice):
    log = register_scripted("scripted", scripted_effects(games_slice, effect_table))
    with LLMClient(workspace, model="scripted/rl", max_calls=10, concurrency=1) as client:
        src = LLMRewards(client, games_slice, ACTIONS, dataset="games")
        with pytest.raises(BudgetExceeded):
            src.prefill()
        assert src.known() == 10
        src.close()
    assert len(log) == 10
    with LLMClient(workspace, model="scripted/rl") as client:
        src = LLMRewards(client, games_slice, ACTIONS, dataset="games")
        assert src.known() == 10
        src.prefill()
        assert src.known() == 24
        src.close()
    assert len(log) == 24     # nothing paid twice


def test_failed_calls_are_neutral_and_retried(workspace, games_slice):
    state = {"fail": True}
    good = scripted_effects(games_slice, effect_table)

    def reply(messages):
        if state["fail"] and " Hint: " in messages[-1]["content"]:
            raise ValueError("provider exploded")
        return good(messages)

    register_scripted("scripted", reply)
    with LLMClient(workspace, model="scripted/rl", max_retries=0) as client:
        src = LLMRewards(client, games_slice, ACTIONS, dataset="games")
        r = src.rewards(np.array([0, 1]), np.array([1, 1]))
        assert list(r) == [0.0, 0.0] and src.stats()["failed"] == 2
        assert src.known() == 2                        # the two no-hint outcomes
        state["fail"] = False
        r = src.rewards(np.array([0, 1]), np.array([1, 1]))
        assert r == pytest.approx([1 - ndcg(4)] * 2)
        src.close()


def test_outcomes_are_keyed_by_hint_text_and_model(workspace, games_slice):
    """An edited hint is a new pair; another model never reads this model's outcomes."""
    log = register_scripted("scripted", scripted_effects(games_slice, effect_table))
    with LLMClient(workspace, model="scripted/rl") as client:
        src = LLMRewards(client, games_slice[:2], ACTIONS[:2], dataset="games")
        src.prefill()
        src.close()
        n = len(log)
        edited = [(0, ""), (1, ACTIONS[1][1] + " Really.")]
        src = LLMRewards(client, games_slice[:2], edited, dataset="games")
        assert src.known() == 2                        # only the no-hint outcomes carry over
        src.close()
    with LLMClient(workspace, model="scripted/other") as client:
        src = LLMRewards(client, games_slice[:2], ACTIONS[:2], dataset="games")
        assert src.known() == 0
        src.close()
    assert len(log) == n


def test_bad_action_lists_are_refused(workspace, games_slice):
    from re2llm_tui.errors import UserError

    register_scripted("scripted", lambda m: "")
    with LLMClient(workspace, model="scripted/rl") as client:
        with pytest.raises(UserError, match="no hint"):
            LLMRewards(client, games_slice, [(1, "a hint")], dataset="games")
        with pytest.raises(UserError, match="no sessions"):
            LLMRewards(client, [], ACTIONS, dataset="games")


def _session_of(sessions, content):
    for n, s in enumerate(sessions):
        if content.startswith(s.prompt.rstrip()):
            return n
    return None


def test_outcomes_are_computed_a_session_at_a_time(workspace, games_slice):
    """Session-major order: all actions of one session back to back (prefix reuse)."""
    log = register_scripted("scripted", scripted_effects(games_slice, effect_table))
    with LLMClient(workspace, model="scripted/rl", concurrency=1) as client:
        src = LLMRewards(client, games_slice, ACTIONS, dataset="games")
        src.prefill()
        src.close()
    order = [_session_of(games_slice, c["messages"][-1]["content"]) for c in log.calls]
    assert order == sorted(order) and len(order) == 24
    # the lazy path too: PPO's batch of (session, action) pairs is regrouped by session
    with LLMClient(workspace, model="scripted/other", concurrency=1) as client:
        log = register_scripted("scripted", scripted_effects(games_slice, effect_table))
        n0 = len(log)
        src = LLMRewards(client, games_slice, ACTIONS, dataset="games")
        src.rewards(np.array([3, 0, 3, 1, 0]), np.array([2, 1, 3, 2, 3]))
        src.close()
    lazy = [_session_of(games_slice, c["messages"][-1]["content"]) for c in log.calls[n0:]]
    assert lazy == [0, 0, 0, 1, 1, 3, 3, 3]


def test_prefill_progress_reports_hint_means_and_eta(workspace, games_slice):
    register_scripted("scripted", scripted_effects(games_slice, effect_table))
    seen = []
    with LLMClient(workspace, model="scripted/rl", concurrency=1) as client:
        src = LLMRewards(client, games_slice, ACTIONS, dataset="games")
        final = src.prefill(progress=seen.append, report_every=0)
        src.close()
    assert final.rows_done == final.rows_total == 6 and final.eta_s == 0.0
    assert final.hint_means[0] == 0.0
    assert final.hint_means[1] == pytest.approx(1 - ndcg(4))
    assert final.hint_counts == [6, 6, 6, 6]
    mid = [p for p in seen if 0 < p.done < p.total]
    assert mid and all(p.per_min > 0 and p.eta_s is not None for p in mid[1:])
    # the means grow as rows arrive: after the first session only it is known
    first_row = next(p for p in seen if p.rows_done == 1)
    assert first_row.hint_counts[1] == 1
