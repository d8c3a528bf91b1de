"""Per-hint evidence (kb/evidence.py), ``kb evidence`` and ``rewards export``.

Hint effects are planted with a scripted LLM (a litellm custom provider): without a hint the
target is at rank 2; hint A puts it first on the sessions whose history holds a given item
and last (rank 10) elsewhere; hint B is A's twin in effect, in other words; hint C does
nothing.  The reward table is filled by the real :class:`LLMRewards`, and every figure is
checked against a hand computation over the planted ranks.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter

import numpy as np
import pytest
from test_rewards import scripted_effects

from re2llm_tui.data.dataset import Dataset

from re2llm_tui.data.release import load_sessions
from re2llm_tui.evaluation.metrics import bootstrap_mean
from re2llm_tui.kb import evidence
from re2llm_tui.kb import store as kb
from re2llm_tui.llm.client import LLMClient
from re2llm_tui.llm.scripted import register_scripted
from re2llm_tui.store import train_runs
from re2llm_tui.store.workspace import open_workspace
from re2llm_tui.utilization.rewards import LLMRewards

DS = "games"
MODEL = "scripted/evidence"
N = 60
TEXT_A = "Put first what matches the item the user already owns."
TEXT_B = "Rank highest a game tied to the accessory in the history."
TEXT_C = "Consider the release year of each candidate."
BASE_RANK = 2


def ndcg(rank):
    return 1 / math.log2(rank + 1) if rank is not None and rank <= 10 else 0.0


def planted(sessions):
    """The history item A and B react to (the slice's most common one) and the effects."""
    counts = Counter(t for s in sessions for t in set(s.history))
    item = sorted(counts, key=lambda t: (-counts[t], t))[0]
    assert counts[item] >= 2

    def effect(s, hint):
        if hint in (TEXT_A, TEXT_B):
            return 1 if item in s.history else 10
        return BASE_RANK                       # no hint, and hint C

    return item, effect


@pytest.fixture(scope="module")
def template(tmp_path_factory, data_dir):
    """A KB with hints A, B, C (accepted) and their reward table over N train sessions,
    built once per module (each test works on its own copy)."""
    path = tmp_path_factory.mktemp("evidence") / "template.sqlite"
    sessions = load_sessions(DS, "train", data_dir)[:N]
    item, effect = planted(sessions)
    db = open_workspace(path)
    kb.KnowledgeBase(db, Dataset.resolve(DS, data_dir))  # seeds the KB
    ids = {}
    for name, text in (("A", TEXT_A), ("B", TEXT_B), ("C", TEXT_C)):
        ids[name] = kb.KnowledgeBase(db, Dataset.resolve(DS)).add(text, status="accepted", source="manual").id
    register_scripted("scripted", scripted_effects(sessions, effect))
    actions = [(0, ""), (ids["A"], TEXT_A), (ids["B"], TEXT_B), (ids["C"], TEXT_C)]
    with LLMClient(path, model=MODEL, concurrency=4) as client:
        src = LLMRewards(client, sessions, actions, dataset=DS, db=db)
        src.prefill()
        assert src.known() == N * 4
        src.close()
    db.conn.close()
    # hand computation of every reward
    hand = {name: {s.id: ndcg(effect(s, text)) - ndcg(BASE_RANK) for s in sessions}
            for name, text in (("A", TEXT_A), ("B", TEXT_B), ("C", TEXT_C))}
    with_item = sorted(s.id for s in sessions if item in s.history)
    return {"path": path, "ids": ids, "hand": hand, "with_item": with_item,
            "sessions": [s.id for s in sessions]}


@pytest.fixture
def table(template, workspace):
    """This test's copy of the template workspace (SQLite's backup API: the file is only
    ever touched through SQLite)."""
    import sqlite3

    src, dst = sqlite3.connect(template["path"]), sqlite3.connect(workspace)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    db = open_workspace(workspace)
    yield {**template, "db": db, "workspace": workspace}
    db.conn.close()


def plant_run(db, ids, sessions, with_item):
    """A finished training run whose agent routes the item's sessions to A, the others to
    C, and never picks B."""
    hint_ids = [0, ids["A"], ids["B"], ids["C"]]
    rid = train_runs.create(db, dataset=DS, model=MODEL, kb_version="v", hint_ids=hint_ids,
                            seed=1, total_steps=64, config={}, n_sessions=len(sessions))
    choices = {s: (ids["A"] if s in with_item else ids["C"]) for s in sessions}
    hist = [sum(1 for c in choices.values() if c == h) for h in hint_ids]
    train_runs.finish(db, rid, "done", 64, {"greedy_hist": hist, "greedy_choices": choices})
    return rid


def test_evidence_matches_a_hand_computation(table):
    db, ids, hand = table["db"], table["ids"], table["hand"]
    rid = plant_run(db, ids, table["sessions"], table["with_item"])
    hints = kb.KnowledgeBase(db, Dataset.resolve(DS)).hints()
    report = evidence.compute(db, DS, hints, model=MODEL)
    assert report.model == MODEL and report.n_sessions == N and report.n_baselines == N
    assert report.agent_run == rid
    a, b, c = (report.evidence[ids[k]] for k in "ABC")
    n_item = len(table["with_item"])
    for ev, name in ((a, "A"), (b, "B"), (c, "C")):
        want = hand[name]
        assert ev.n == N and not ev.stale
        assert ev.mean == pytest.approx(sum(want.values()) / N)
        assert ev.helped == sum(v > 0 for v in want.values())
        assert ev.hurt == sum(v < 0 for v in want.values())
        assert ev.unchanged == sum(v == 0 for v in want.values())
        assert {e.session_id: e.reward for e in ev.sessions} == pytest.approx(want)
        # the CI is the seeded bootstrap of exactly these rewards
        boot = bootstrap_mean([want[s] for s in sorted(want)], n_boot=evidence.N_BOOT,
                              seed=evidence.SEED)
        assert ev.ci == pytest.approx((boot["lo"], boot["hi"]))
    # A (and its twin B): helped exactly on the item's sessions, hurt everywhere else
    assert a.helped == n_item and a.hurt == N - n_item and a.unchanged == 0
    assert a.ci[1] < 0 and a.mean < 0                      # the CI's sign: entirely below 0
    assert [e.session_id for e in a.gains] == table["with_item"][:evidence.TOP]
    others = sorted(set(table["sessions"]) - set(table["with_item"]))
    assert [e.session_id for e in a.losses] == others[:evidence.TOP]
    assert a.gains[0].rank_without == BASE_RANK and a.gains[0].rank_with == 1
    assert a.losses[0].rank_with == 10
    # sessions sorted by gain, largest first
    assert [e.reward for e in a.sessions] == sorted((e.reward for e in a.sessions), reverse=True)
    # C: nothing changes: the CI is [0, 0]
    assert c.helped == c.hurt == 0 and c.unchanged == N and c.ci == (0.0, 0.0)
    # badges
    assert [x.kind for x in a.badges] == ["hurts"]
    assert sorted(x.label for x in b.badges) == sorted(["hurts", f"acts like #{ids['A']}",
                                                       "unused"])
    assert b.badge("acts like").other == ids["A"] and "r = 1.00" in b.badge("acts like").why
    assert [x.kind for x in c.badges] == ["no effect"]
    assert "within ±0.05" in c.badge("no effect").why
    assert "entirely below 0" in a.badge("hurts").why
    assert f"training run #{rid}" in b.badge("unused").why
    assert f"picks it on none of its {N} sessions" in b.badge("unused").why
    assert f"same mean reward ({a.mean:+.3f}) and a larger agent share " \
           f"({n_item / N:.0%} vs 0%)" in b.badge("acts like").why
    # the agent: shares and the sessions it routes to each hint
    assert a.agent.share == pytest.approx(n_item / N)
    assert a.agent.sessions == table["with_item"]
    assert b.agent.share == 0 and b.agent.sessions == []
    assert c.agent.sessions == others
    assert all(e.agent_pick for e in a.sessions if e.session_id in table["with_item"])
    # release hints without outcomes: empty evidence, no badge, no claim of a change
    release = report.evidence[1]
    assert release.n == 0 and release.badges == [] and not release.stale and release.note


def test_no_effect_needs_enough_sessions(table):
    db, ids = table["db"], table["ids"]
    db.execute("DELETE FROM reward_outcomes WHERE session_id NOT IN (?,?,?)",
               table["sessions"][:3])
    report = evidence.compute(db, DS, kb.KnowledgeBase(db, Dataset.resolve(DS)).hints(), model=MODEL)
    c = report.evidence[ids["C"]]
    assert c.n == 3 and c.ci == (0.0, 0.0) and c.badges == []


def test_similar_hints_and_reward_correlation(table):
    db, ids = table["db"], table["ids"]
    hints = [h for h in kb.KnowledgeBase(db, Dataset.resolve(DS)).hints() if h.id in ids.values()]
    ev, _ = evidence.hint_evidence(db, DS, hints, ids["A"], model=MODEL)
    assert [s.hint_id for s in ev.similar] == sorted(
        (ids["B"], ids["C"]), key=lambda i: -next(s.cosine for s in ev.similar if s.hint_id == i))
    twin = next(s for s in ev.similar if s.hint_id == ids["B"])
    assert twin.correlation == pytest.approx(1.0) and twin.common == N
    flat = next(s for s in ev.similar if s.hint_id == ids["C"])
    assert flat.correlation is None and flat.common == N       # C's rewards are all 0
    # the vectors are cached in the workspace: a second call needs no model
    class Refuse:
        def encode(self, texts, batch_size=64):
            raise AssertionError(texts)
    again, _ = evidence.hint_evidence(db, DS, hints, ids["A"], model=MODEL, encoder=Refuse())
    assert [s.hint_id for s in again.similar] == [s.hint_id for s in ev.similar]


def test_a_changed_text_has_empty_evidence_said_so(table):
    db, ids = table["db"], table["ids"]
    kb.KnowledgeBase(db, Dataset.resolve(DS)).edit(ids["C"], "Consider the release year and the price.")
    report = evidence.compute(db, DS, kb.KnowledgeBase(db, Dataset.resolve(DS)).hints(), model=MODEL)
    c = report.evidence[ids["C"]]
    assert c.stale and c.n == 0 and c.stale_outcomes == N and c.badges == []
    assert "changed" in c.note and "until the reward table is computed again" in c.note


def test_unknown_hint_and_missing_table(table):
    db = table["db"]
    hints = kb.KnowledgeBase(db, Dataset.resolve(DS)).hints()
    with pytest.raises(evidence.UnknownHint, match="no hint #999"):
        evidence.hint_evidence(db, DS, hints, 999, model=MODEL)
    with pytest.raises(evidence.NoRewardTable, match="no reward table for dataset games"):
        evidence.compute(db, DS, hints, model="other/model")
    with pytest.raises(evidence.NoRewardTable):
        evidence.compute(db, "movies", [], model=MODEL)


def test_histogram_counts_every_reward(table):
    db, ids = table["db"], table["ids"]
    a = evidence.compute(db, DS, kb.KnowledgeBase(db, Dataset.resolve(DS)).hints(), model=MODEL).evidence[ids["A"]]
    bins = evidence.histogram(a.rewards)
    assert sum(c for *_, c in bins) == N
    up = ndcg(1) - ndcg(BASE_RANK)
    assert next(c for lo, hi, c in bins if lo <= up < hi) == len(table["with_item"])


# --------------------------------------------------------------------------- split

N_TEST = 40
TEST_RANK = 10          # C on the test sessions: the target drops from rank 2 to rank 10


def plant_test_outcomes(db, context, data_dir, model=MODEL):
    """Outcomes of C on N_TEST *test* sessions (as an evaluation stores them, in the same
    reward table) where C hurts every session: mixed in, they would turn C's "no effect"
    on the train split into "hurts"."""
    sessions = load_sessions(DS, "test", data_dir)[:N_TEST]
    rows = []
    for s in sessions:
        for text, rank in (("", BASE_RANK), (TEXT_C, TEST_RANK)):
            rows.append((DS, model, context, s.id, evidence.hint_key(text), rank,
                         ndcg(rank)))
    db.conn.executemany("INSERT INTO reward_outcomes (dataset, model, context, session_id, "
                        "hint_key, target_rank, ndcg) VALUES (?,?,?,?,?,?,?)", rows)
    return [s.id for s in sessions]


def test_evidence_reads_the_train_split_and_leaves_test_outcomes_out(table, data_dir,
                                                                      run_cli):
    db, ids = table["db"], table["ids"]
    hints = kb.KnowledgeBase(db, Dataset.resolve(DS)).hints()
    context = evidence.compute(db, DS, hints, model=MODEL).context
    test_ids = plant_test_outcomes(db, context, data_dir)
    loss = ndcg(TEST_RANK) - ndcg(BASE_RANK)
    train = evidence.compute(db, DS, hints, model=MODEL)               # the default
    test = evidence.compute(db, DS, hints, model=MODEL, split="test")
    every = evidence.compute(db, DS, hints, model=MODEL, split="all")
    c_train, c_test, c_all = (r.evidence[ids["C"]] for r in (train, test, every))
    # train: C does nothing, as before the test outcomes were stored; they are counted
    assert train.split == "train" and train.n_sessions == N and train.n_outcomes == N * 4
    assert train.left_out == N_TEST * 2 and train.left_out_sessions == N_TEST
    assert c_train.n == N and c_train.mean == 0 and [b.kind for b in c_train.badges] == \
        ["no effect"]
    assert c_train.left_out == N_TEST and set(e.session_id for e in c_train.sessions) == \
        set(table["sessions"])
    assert train.left_out_line() == (f"{N_TEST * 2} test-split outcome(s) on {N_TEST} "
                                     "session(s) left out (held out for evaluation)")
    # test: only the planted sessions, where C hurts
    assert test.n_sessions == N_TEST and test.left_out == N * 4
    assert c_test.n == N_TEST and c_test.mean == pytest.approx(loss)
    assert [b.kind for b in c_test.badges] == ["hurts"]
    assert {e.session_id for e in c_test.sessions} == set(test_ids)
    a_test = test.evidence[ids["A"]]                 # A has train outcomes only
    assert a_test.n == 0 and a_test.left_out == N and not a_test.stale
    assert "no test-split outcome of this text" in a_test.note and "only train-split" in \
        a_test.note
    # all: the leak the default avoids -- C's badge flips from "no effect" to "hurts"
    assert every.left_out == 0 and c_all.n == N + N_TEST
    assert c_all.mean == pytest.approx(loss * N_TEST / (N + N_TEST))
    assert [b.kind for b in c_all.badges] == ["hurts"]
    # A has no test outcome: nothing of it is left out
    assert train.evidence[ids["A"]].left_out == 0
    assert train.evidence[ids["A"]].badges == every.evidence[ids["A"]].badges
    # the CLI: --split, default train, carried by the JSON and the CSV
    args = cli_args(table, "--model", MODEL)
    code, out, err = run_cli("kb", "evidence", str(ids["C"]), *args, "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["split"] == "train" and got["n_outcomes"] == N * 4
    assert got["left_out"] == {"outcomes": N_TEST * 2, "sessions": N_TEST}
    assert got["hints"][0]["n"] == N and got["hints"][0]["left_out"] == N_TEST
    assert [b["kind"] for b in got["hints"][0]["badges"]] == ["no effect"]
    code, out, _ = run_cli("kb", "evidence", str(ids["C"]), *args, "--json", "--split", "test")
    got = json.loads(out)
    assert code == 0 and got["split"] == "test" and got["hints"][0]["n"] == N_TEST
    assert [b["kind"] for b in got["hints"][0]["badges"]] == ["hurts"]
    for split, badge, n in (("train", "no effect", N), ("test", "hurts", N_TEST),
                            ("all", "hurts", N + N_TEST)):
        code, out, _ = run_cli("kb", "evidence", *args, "--csv", "--split", split)
        row = next(r for r in csv.DictReader(io.StringIO(out)) if r["id"] == str(ids["C"]))
        assert code == 0 and row["split"] == split and row["badges"] == badge
        assert row["n"] == str(n)
    # the human form says the split, and once what it left out
    code, out, _ = run_cli("kb", "evidence", *args)
    assert code == 0 and f"evidence: train split, {N * 4} outcomes on {N} sessions" in out
    assert out.count("left out") == 1 and f"{N_TEST * 2} test-split outcome(s)" in out
    code, out, _ = run_cli("kb", "evidence", *args, "--split", "test")
    assert code == 0 and "not for curation" in out


def test_a_table_of_test_outcomes_only_is_no_train_evidence(table, data_dir, run_cli):
    db, ids = table["db"], table["ids"]
    hints = kb.KnowledgeBase(db, Dataset.resolve(DS)).hints()
    context = evidence.compute(db, DS, hints, model=MODEL).context
    plant_test_outcomes(db, context, data_dir, model="evaluated/only")
    with pytest.raises(evidence.NoRewardTable, match=f"no train-split outcomes .* its "
                                                     f"{N_TEST * 2} stored outcome"):
        evidence.compute(db, DS, hints, model="evaluated/only")
    report = evidence.compute(db, DS, hints, model="evaluated/only", split="test")
    assert report.evidence[ids["C"]].n == N_TEST
    for extra, want in (([], "no train-split outcomes"), (["--split", "dev"],
                                                          "unknown split 'dev'")):
        code, out, err = run_cli("kb", "evidence", *cli_args(table, "--model",
                                                              "evaluated/only", *extra))
        lines = err.strip().splitlines()
        assert code == 2 and out == "" and len(lines) == 1 and want in lines[0], err


# --------------------------------------------------------------------------- CLI

def cli_args(table, *extra):
    return ["--db", str(table["workspace"]), "--dataset", DS, *extra]


def test_kb_evidence_json_matches_the_core(table, run_cli):
    db, ids = table["db"], table["ids"]
    plant_run(db, ids, table["sessions"], table["with_item"])
    code, out, err = run_cli("kb", "evidence", str(ids["B"]),
                             *cli_args(table, "--model", MODEL, "--json"))
    assert code == 0, err
    got = json.loads(out)
    core, report = evidence.hint_evidence(db, DS, kb.KnowledgeBase(db, Dataset.resolve(DS)).hints(), ids["B"], model=MODEL)
    assert got["hints"] == [json.loads(json.dumps(core.as_dict()))]
    assert got["model"] == MODEL and got["context"] == report.context
    hb = got["hints"][0]
    assert hb["helped"] == len(table["with_item"]) and hb["ci"][1] < 0
    assert {b["label"] for b in hb["badges"]} == {"hurts", f"acts like #{ids['A']}", "unused"}
    # all hints when no id is given; the human form names the badges and the why
    code, out, _ = run_cli("kb", "evidence", *cli_args(table, "--model", MODEL, "--json"))
    assert code == 0 and len(json.loads(out)["hints"]) == len(kb.KnowledgeBase(db, Dataset.resolve(DS)).hints())
    code, out, _ = run_cli("kb", "evidence", str(ids["C"]), *cli_args(table, "--model", MODEL))
    assert code == 0 and "no effect" in out and "within ±0.05" in out
    # CSV: one row per hint
    code, out, _ = run_cli("kb", "evidence", *cli_args(table, "--model", MODEL, "--csv"))
    rows = list(csv.DictReader(io.StringIO(out)))
    row_c = next(r for r in rows if r["id"] == str(ids["C"]))
    assert row_c["badges"] == "no effect" and row_c["n"] == str(N)


@pytest.mark.parametrize("case", ["unknown id", "no table", "changed text", "json and csv"])
def test_kb_evidence_bad_input_is_one_line(table, run_cli, case):
    db, ids = table["db"], table["ids"]
    if case == "unknown id":
        args = ["999", *cli_args(table, "--model", MODEL)]
        want = "no hint #999"
    elif case == "no table":
        args = cli_args(table, "--model", "other/model")
        want = "no reward table for dataset games with model other/model"
    elif case == "changed text":
        kb.KnowledgeBase(db, Dataset.resolve(DS)).edit(ids["C"], "Consider the release year and the price.")
        args = [str(ids["C"]), *cli_args(table, "--model", MODEL)]
        want = "changed since"
    else:
        args = cli_args(table, "--model", MODEL, "--json", "--csv")
        want = "--json or --csv"
    code, out, err = run_cli("kb", "evidence", *args)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("re2llm-tui: error: ") and want in lines[0]


def test_rewards_export_long_form(table, run_cli, tmp_path):
    ids = table["ids"]
    out_csv = tmp_path / "rewards.csv"
    code, _, err = run_cli("rewards", "export", *cli_args(table, "--format", "csv", "-o",
                                                           str(out_csv)))
    assert code == 0, err
    rows = list(csv.DictReader(out_csv.open(encoding="utf-8")))
    assert len(rows) == N * 4
    assert set(rows[0]) >= {"session_id", "action", "hint_text", "ndcg_with", "ndcg_without",
                            "reward", "model", "context"}
    by = {(r["session_id"], int(r["action"])): r for r in rows}
    for s in table["sessions"]:
        for name in "ABC":
            r = by[(s, ids[name])]
            assert float(r["reward"]) == pytest.approx(table["hand"][name][s])
            assert float(r["ndcg_without"]) == pytest.approx(ndcg(BASE_RANK))
            assert r["model"] == MODEL
        assert float(by[(s, 0)]["reward"]) == 0.0 and by[(s, 0)]["hint_text"] == ""
    assert by[(table["sessions"][0], ids["A"])]["hint_text"] == TEXT_A
    # JSON lines to stdout, the same rows
    code, out, _ = run_cli("rewards", "export", *cli_args(table, "--format", "jsonl"))
    lines = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and len(lines) == N * 4
    assert {(x["session_id"], x["action"]) for x in lines} == set(by)


def test_rewards_export_refuses_the_workspace_and_neutralises_formulas(table, run_cli,
                                                                        tmp_path):
    db, ids = table["db"], table["ids"]
    before = table["workspace"].stat().st_size
    code, out, err = run_cli("rewards", "export", *cli_args(table, "--format", "csv", "-o",
                                                             str(table["workspace"])))
    assert code == 2 and "workspace" in err and len(err.strip().splitlines()) == 1
    assert table["workspace"].stat().st_size >= before
    assert open_workspace(table["workspace"]).execute(
        "SELECT COUNT(*) FROM reward_outcomes").fetchone()[0] == N * 4
    # a hint text that a spreadsheet would run as a formula
    kb.KnowledgeBase(db, Dataset.resolve(DS)).edit(ids["C"], "=HYPERLINK(\"http://x\") first")
    db.execute("UPDATE reward_outcomes SET hint_key=? WHERE hint_id=?",
               [evidence.hint_key("=HYPERLINK(\"http://x\") first"), ids["C"]])
    target = tmp_path / "x.csv"
    code, _, err = run_cli("rewards", "export", *cli_args(table, "--format", "csv", "-o",
                                                           str(target)))
    assert code == 0, err
    texts = {r["hint_text"] for r in csv.DictReader(target.open(encoding="utf-8"))}
    assert "'=HYPERLINK(\"http://x\") first" in texts


def test_rewards_export_without_a_table_is_one_line(table, run_cli):
    code, out, err = run_cli("rewards", "export", *cli_args(table, "--model", "other/model",
                                                             "--format", "csv"))
    assert code == 2 and out == "" and "no reward table" in err
    code, out, err = run_cli("rewards", "export", *cli_args(table, "--format", "xml"))
    assert code == 2 and out == ""


def test_core_module_without_ui_imports():
    import subprocess
    import sys

    code = ("import sys, re2llm_tui.kb.evidence, re2llm_tui.store.outcomes; "
            "sys.exit(1 if any(m in sys.modules for m in ('textual', 'rich', 'torch')) else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
