"""Rank accounting (issue 13, part 1): the target's rank is its position among the reply's
listed items (invented and repeated titles keep their slots) unless ``--rank-by candidates``
asks for the matched-only rank; ``score``, ``recommend``, the reward table and ``evaluate``
count it the same way, and every metric table reports how valid the replies were."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import keep_hints_1_and_2
from replies import prompt_reader, ranked_reply

from re2llm_tui.data.dataset import Dataset
from re2llm_tui.data.release import load_sessions
from re2llm_tui.evaluation.compare import CONTENT, NO_HINT, evaluate
from re2llm_tui.evaluation.metrics import ndcg_at
from re2llm_tui.evaluation.recommend import recommend
from re2llm_tui.evaluation.scoring import format_output_file
from re2llm_tui.llm.client import LLMClient
from re2llm_tui.llm.parsing import (
    ParsedRanking,
    parse_ranking,
    reply_ranking,
    target_rank,
)
from re2llm_tui.llm.scripted import register_scripted
from re2llm_tui.store import runs
from re2llm_tui.store.workspace import open_workspace
from re2llm_tui.utilization.rewards import LLMRewards, reward_context

INVENTED = ["Zzyzx Quest: The Imaginary Saga", "Made-Up Racer Deluxe 3000"]
CANDS = ["Alien", "Aliens", "Up", "Toy Story", "Gran Torino", "Casino", "Heat", "Jaws",
         "Se7en", "Fargo", "Brazil", "Ronin"]


# --------------------------------------------------------------------------- the parser

def test_target_after_two_invented_titles_counts_7th_by_default_5th_by_candidates():
    reply = "\n".join(f"{i}. {t}" for i, t in enumerate(
        ["Alien", INVENTED[0], "Up", INVENTED[1], "Toy Story", "Casino", "Heat", "Jaws"], 1))
    p = parse_ranking(reply, CANDS)
    assert p.positions == [0, None, 2, None, 3, 5, 6, 7]
    assert target_rank(p, 6) == 7 and target_rank(p, 6, "reply") == 7
    assert target_rank(p, 6, "candidates") == 5
    assert target_rank(p, 11) is None and target_rank(p, 11, "candidates") is None
    assert (p.listed, p.valid, p.distinct) == (8, 6, 6)


def test_repeats_keep_their_slot_and_only_the_first_occurrence_counts():
    p = parse_ranking("1. Alien\n2. Up\n3. Alien\n4. Heat\n5. Heat\n6. Jaws", CANDS)
    assert p.positions == [0, 2, 0, 6, 6, 7] and p.ranking == [0, 2, 6, 7]
    assert target_rank(p, 6) == 4 and target_rank(p, 6, "candidates") == 3
    assert target_rank(p, 7) == 6 and target_rank(p, 7, "candidates") == 4
    assert (p.listed, p.valid, p.distinct) == (6, 6, 4)


def test_a_preamble_is_not_a_listed_item():
    p = parse_ranking("Here are my recommendations:\n1. Jaws\n2. Heat", CANDS)
    assert p.positions == [7, 6] and target_rank(p, 6) == 2


def test_local_engine_reply_is_its_ranking():
    ranking = [5, 3, 9, 0, 1, 2, 4, 6, 7, 8]
    for method in ("sequential", "logprob"):
        p = reply_ranking("ignored text", ranking, CANDS, rank_method=method)
        assert p.positions == ranking == p.ranking
        assert all(target_rank(p, t, rb) == ranking.index(t) + 1
                   for t in ranking for rb in ("reply", "candidates"))
    assert ParsedRanking.of_ranking(ranking).valid == 10
    generated = reply_ranking(f"1. {INVENTED[0]}\n2. Heat", [6], CANDS, rank_method="generate")
    assert generated.positions == [None, 6] and target_rank(generated, 6) == 2


def test_unknown_rank_by_is_one_line(run_cli, tmp_path, workspace):
    f = tmp_path / "out.txt"
    f.write_text("Label:x\nOutput: 1. y\n")
    code, _, err = run_cli("score", f, "--rank-by", "lines", "--db", workspace)
    assert code == 2 and "--rank-by" in err and err.count("\n") == 1
    assert not workspace.exists()


# --------------------------------------------------------------------------- score

def _reply_7th_after_two_invented(s) -> str:
    negs = [c for c in s.candidates if c != s.target]
    items = [negs[0], INVENTED[0], negs[1], INVENTED[1], negs[2], negs[3], s.target,
             negs[4], negs[5], negs[6]]
    return "\n".join(f"{i}. {t}" for i, t in enumerate(items, 1))


def test_score_generated_file_counts_reply_positions(data_dir, tmp_path, workspace, run_cli):
    sessions = load_sessions("movies", "train", data_dir)
    # session 0: the case; the others: a plain top-10 with the target at (i % 10) + 1
    blocks = [(s.target, _reply_7th_after_two_invented(s) if s.index == 0
               else ranked_reply(s, (s.index % 10) + 1)) for s in sessions]
    f = tmp_path / "movie_train_base.txt"
    f.write_bytes(format_output_file(blocks).encode("latin-1", errors="replace"))
    got = {}
    for rank_by in ("reply", "candidates"):
        extra = [] if rank_by == "reply" else ["--rank-by", "candidates"]
        code, out, err = run_cli("score", "-d", "movies", "-s", "train", f, "--db", workspace,
                                 "--data-dir", data_dir, "--json", *extra)
        assert code == 0, err
        got[rank_by] = json.loads(out)
        assert got[rank_by]["rank_by"] == rank_by
        db = open_workspace(workspace)
        assert runs.get_run(db, got[rank_by]["run_id"])["params"]["rank_by"] == rank_by
        assert runs.run_ranks(db, got[rank_by]["run_id"])[sessions[0].id] == \
            (7 if rank_by == "reply" else 5)
    reply, cands = got["reply"], got["candidates"]
    # 499 sessions agree; session 0 is a hit@5 only by candidates
    assert cands["hr@5"] - reply["hr@5"] == pytest.approx(1 / 500)
    assert cands["ndcg@5"] - reply["ndcg@5"] == pytest.approx(1 / math.log2(6) / 500, abs=1e-6)
    assert reply["ndcg@10"] == pytest.approx(
        cands["ndcg@10"] + (1 / math.log2(8) - 1 / math.log2(6)) / 500, abs=1e-6)
    for j in (reply, cands):      # validity: 5000 listed lines, 2 invented; session 0 lists 8
        assert j["replies"] == 500 and j["hallucinations"] == 2
        assert j["valid_rate"] == pytest.approx(4998 / 5000)
        assert j["hallucinations_per_reply"] == pytest.approx(2 / 500)
        assert j["short_replies"] == 1
    code, out, err = run_cli("score", "-d", "movies", "-s", "train", f, "--db", workspace,
                             "--data-dir", data_dir)
    assert code == 0 and "rank by reply" in out and "halluc/reply" in out


def _real_movie_outputs(data_dir: Path) -> Path | None:
    """The release's recorded real-LLM outputs of the 500 movie train sessions
    (``movie/example_train_base.txt``): in the data folder, or named by
    ``$RE2LLM_MOVIE_TRAIN_BASE``; kept out of the repository."""
    for p in (os.environ.get("RE2LLM_MOVIE_TRAIN_BASE"), data_dir / "movie" /
              "example_train_base.txt"):
        if p and Path(p).is_file():
            return Path(p)
    return None


def test_real_recorded_movie_outputs_score_250_and_1689(data_dir, tmp_path, workspace, run_cli):
    f = _real_movie_outputs(data_dir)
    if f is None:
        pytest.skip("the release's movie/example_train_base.txt is not on this machine (put "
                    "it in the data folder or set RE2LLM_MOVIE_TRAIN_BASE)")
    code, out, err = run_cli("score", "-d", "movies", "-s", "train", f, "--db", workspace,
                             "--data-dir", data_dir, "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["n"] == 500 and got["label_mismatches"] == 0 and got["hallucinations"] == 79
    assert round(got["hr@5"], 3) == 0.250 and round(got["ndcg@5"], 4) == 0.1689
    assert round(got["hr@1"], 3) == 0.080 and round(got["hr@10"], 3) == 0.388
    assert round(got["ndcg@10"], 3) == 0.214
    assert got["valid_rate"] == pytest.approx(4921 / 5000) and got["short_replies"] == 25
    code, out, err = run_cli("score", "-d", "movies", "-s", "train", f, "--db", workspace,
                             "--data-dir", data_dir, "--json", "--rank-by", "candidates")
    got = json.loads(out)
    assert round(got["hr@5"], 3) == 0.252 and round(got["ndcg@5"], 4) == 0.1698


# --------------------------------------------------------------------------- reward = metrics

def hallucinating(sessions, effect):
    """A scripted LLM that invents titles and repeats one: for a session and hint text, the
    target is listed at *reply position* ``effect(session, hint)`` (None: not listed) among
    12 lines, after an invented title and a repeat (and, from line 5 on, a second invention)."""
    read = prompt_reader(sessions)

    def reply(messages):
        s, hint = read(messages)
        if s is None:
            return "I cannot help with that."
        negs = [c for i, c in enumerate(s.candidates) if i != s.target_index]
        lines = [negs[0], INVENTED[0], negs[1], negs[0], INVENTED[1]] + negs[2:9]
        pos = effect(s, hint)
        if pos is not None:
            lines.insert(pos - 1, s.target)
        return "\n".join(f"{i}. {t}" for i, t in enumerate(lines[:12], 1))

    return reply


def _effect(hints):
    """reply position of the target: no hint 7 (candidates: 4); hint 1: 2 (2); hint 2: 11
    (candidates 8: a hit only when invented and repeated lines are dropped); odd sessions
    without a hint: not listed."""
    def effect(s, hint):
        if hint == "":
            return 7 if s.index % 2 == 0 else None
        return 2 if hint == hints[1] else 11
    return effect


@pytest.fixture
def kb_case(workspace, data_dir):
    """Workspace whose games KB has two accepted hints; the hallucinating scripted LLM."""
    db = open_workspace(workspace)
    actions = keep_hints_1_and_2(db)
    sessions = load_sessions("games", "test", data_dir)
    hints = [t for _, t in actions]
    register_scripted("scripted", hallucinating(sessions, _effect(hints)))
    return db, actions, sessions


@pytest.mark.parametrize("rank_by", ["reply", "candidates"])
def test_reward_recommend_score_and_evaluate_agree(kb_case, workspace, data_dir, tmp_path,
                                                   run_cli, rank_by):
    db, actions, sessions = kb_case
    few = sessions[:4]
    expect_rank = {"reply": {0: 7, 1: 2, 2: 11}, "candidates": {0: 4, 1: 2, 2: 8}}[rank_by]
    with LLMClient(workspace, model="scripted/agree") as client:
        src = LLMRewards(client, few, actions, dataset="games", rank_by=rank_by)
        src.prefill()
        assert src.context == reward_context(client, rank_by) and \
            src.context.endswith(f"|rank-by={rank_by}")
        rec = {a: recommend(few, client, dataset="games", split="test", hint=t or None,
                            rank_by=rank_by).ranks for a, t in enumerate(t for _, t in actions)}
        for i, s in enumerate(few):
            for a in range(3):
                want = None if (a == 0 and i % 2) else expect_rank[a]
                assert src.target_rank(i, a) == rec[a][s.id] == want
                assert src.ndcg[i, a] == pytest.approx(ndcg_at(want, 10))
        # the reward is the metric difference, session by session
        r = src.rewards(np.repeat(np.arange(4), 3), np.tile(np.arange(3), 4)).reshape(4, 3)
        for i, s in enumerate(few):
            for a in (1, 2):
                assert r[i, a] == pytest.approx(ndcg_at(rec[a][s.id], 10)
                                                - ndcg_at(rec[0][s.id], 10), abs=1e-6)
        src.close()
        # evaluate reads the same outcomes: its no-hint row is recommend's, with validity
        res = evaluate(db, Dataset.resolve("games"), "test", client=client, limit=4, n_boot=50, rank_by=rank_by)
    assert res.ranks[NO_HINT] == [rec[0][s.id] for s in few]
    row = res.rows[NO_HINT]
    assert row["replies"] == 4 and row["short_replies"] == 4     # 8 or 9 distinct valid titles
    assert row["hallucinations_per_reply"] == pytest.approx(2.0)
    assert row["valid_rate"] == pytest.approx(40 / 48)
    assert res.rows[CONTENT]["replies"] is None
    for rid in res.run_ids.values():
        assert runs.get_run(db, rid)["params"]["rank_by"] == rank_by
    assert res.as_dict()["rows"][NO_HINT]["valid_rate"] == pytest.approx(40 / 48, abs=1e-6)
    assert res.as_dict()["rows"][CONTENT]["valid_rate"] is None

    # score of the same replies (the whole split, as recorded outputs) agrees too
    from re2llm_tui.prompts import recommend_prompt

    reply = hallucinating(sessions, _effect([t for _, t in actions]))
    f = tmp_path / "games_test.txt"
    f.write_text(format_output_file(
        [(s.target, reply([{"content": recommend_prompt(s.prompt)}])) for s in sessions]))
    code, out, err = run_cli("score", "-d", "games", "-s", "test", f, "--db", workspace,
                             "--data-dir", data_dir, "--json", "--rank-by", rank_by)
    assert code == 0, err
    stored = runs.run_ranks(open_workspace(workspace), json.loads(out)["run_id"])
    assert [stored[s.id] for s in few] == res.ranks[NO_HINT]


def test_outcomes_of_one_accounting_are_never_read_by_the_other(kb_case, workspace):
    _, actions, sessions = kb_case
    few = sessions[:2]
    with LLMClient(workspace, model="scripted/keys") as client:
        by_reply = LLMRewards(client, few, actions, dataset="games")
        by_reply.prefill()
        assert by_reply.known() == 6 and by_reply.rank_by == "reply"
        by_cands = LLMRewards(client, few, actions, dataset="games", rank_by="candidates")
        assert by_cands.known() == 0                     # stored under another context
        # served from the LLM cache (worker processes get the accounting too: see
        # test_rewards_pool.test_workers_keep_the_tables_accounting_and_tag)
        by_cands.prefill()
        assert by_cands.calls == 0 and by_cands.hits == 6
        assert by_reply.target_rank(0, 2) == 11 and by_cands.target_rank(0, 2) == 8
        # session 1: not listed without a hint; hint 2 lists it 11th (8th among candidates)
        assert by_reply.table()[1, 2] == 0 < by_cands.table()[1, 2]
        by_reply.close()
        by_cands.close()
    contexts = {r[0] for r in open_workspace(workspace).execute(
        "SELECT DISTINCT context FROM reward_outcomes")}
    assert {c.rsplit("|", 1)[1] for c in contexts} == {"rank-by=reply", "rank-by=candidates"}


@pytest.mark.usefixtures("kb_case")
def test_recommend_run_params_and_cli_rank_by(workspace, data_dir, run_cli):
    out = {}
    for rank_by in ("reply", "candidates"):
        code, o, err = run_cli("recommend", "-d", "games", "-s", "test", "-n", 2, "--model",
                               "scripted/cli", "--db", workspace, "--data-dir", data_dir,
                               "--json", "--rank-by", rank_by)
        assert code == 0, err
        out[rank_by] = json.loads(o)
        run = runs.get_run(open_workspace(workspace), out[rank_by]["run_id"])
        assert run["params"]["rank_by"] == rank_by == out[rank_by]["rank_by"]
    assert out["reply"]["run_id"] != out["candidates"]["run_id"]      # never resumed across
    # session 0 lists the target 7th (4th among the matched candidates), session 1 not at all
    assert out["reply"]["metrics"]["ndcg@10"] == pytest.approx(1 / math.log2(8) / 2, abs=1e-6)
    assert out["candidates"]["metrics"]["ndcg@10"] == pytest.approx(1 / math.log2(5) / 2,
                                                                    abs=1e-6)
    assert out["reply"]["metrics"]["hr@5"] == 0 and out["candidates"]["metrics"]["hr@5"] == 0.5
    m = out["reply"]["metrics"]
    assert m["replies"] == 2 and m["hallucinations_per_reply"] == 2.0
    assert m["valid_rate"] == pytest.approx((10 + 10) / 24, abs=1e-6)
