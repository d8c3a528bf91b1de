"""Sampled models and variance (issue 20 item 5): ``--samples N`` on recommend, evaluate
and train, against loopback servers whose answers vary from one request to the next.

* each request is asked N times under N distinct cache keys (sample 0's key is the key
  without ``--samples``), a rerun is served from the cache;
* the metrics are the mean over samples with the between-sample spread (table and JSON);
* the reward table averages N samples per outcome (its context names the samples);
* the dry run counts N x the calls; ``--samples`` is bounded with one line.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from conftest import db_rows, keep_hints_1_and_2
from wire_servers import WireServer

MODEL = "openai/gpt-5-mini"          # a reasoning model: its replies are samples


@pytest.fixture(scope="module")
def movies(data_dir):
    from re2llm_tui.data.release import load_sessions

    return load_sessions("movies", "test", data_dir)[:6]


class Varying:
    """A scripted answer that differs from one asking of a prompt to the next: the k-th
    time (0-based) session i's prompt is asked, the target is put at rank
    ``(i + 3 * k) % 12 + 1`` (left out past 10).  ``asked`` counts per prompt."""

    def __init__(self, sessions):
        self.sessions = list(sessions)
        self.asked: dict[str, int] = {}
        self.lock = threading.Lock()

    def find(self, prompt):
        p = prompt.strip()
        for i, s in enumerate(self.sessions):
            if p.startswith(s.prompt.strip()):
                return i, s
        return None, None

    def rank_of(self, i: int, k: int):
        pos = (i + 3 * k) % 12
        return pos + 1 if pos < 10 else None

    def __call__(self, prompt):
        i, s = self.find(prompt)
        if s is None:
            return "No"
        with self.lock:
            k = self.asked.get(prompt, 0)
            self.asked[prompt] = k + 1
        others = [c for j, c in enumerate(s.candidates) if j != s.target_index]
        pos = (i + 3 * k) % 12
        listed = others[:10]
        if pos < 10:
            listed = others[:pos] + [s.candidates[s.target_index]] + others[pos:9]
        return "\n".join(f"{n}. {t}" for n, t in enumerate(listed, 1))


def _recommend(run_cli, srv, workspace, data_dir, *extra, n=6, as_json=True):
    code, out, err = run_cli("recommend", "-d", "movies", "-n", str(n),
                             *(["--json"] if as_json else []),
                             "--model", MODEL, "--api-base", srv.base_url, "--db", workspace,
                             "--data-dir", data_dir, "--transport", "fast", *extra,
                             env={"OPENAI_API_KEY": "sk-test"})
    if not as_json:
        return code, out, err
    return code, (json.loads(out) if code == 0 and out.strip() else None), err


def test_recommend_samples_asks_each_request_n_times_and_reports_mean_and_spread(
        workspace, data_dir, run_cli, movies):
    from re2llm_tui.evaluation.metrics import ndcg_at

    answer = Varying(movies)
    with WireServer("openai", answer_fn=answer) as srv:
        code, res, err = _recommend(run_cli, srv, workspace, data_dir, "--samples", "3")
        assert code == 0, err
        sent = len(srv.requests)
        # the rerun: every sample from the cache, nothing sent
        code2, res2, err2 = _recommend(run_cli, srv, workspace, data_dir, "--samples", "3")
        assert code2 == 0, err2
        assert len(srv.requests) == sent
        code3, out, err3 = _recommend(run_cli, srv, workspace, data_dir, "--samples", "3",
                                      as_json=False)
        assert code3 == 0, err3
    # 3 distinct requests per session, each prompt asked 3 times, keyed apart
    assert sent == 3 * len(movies)
    assert sorted(answer.asked.values()) == [3] * len(movies)
    assert res["calls"] == 18 and res["cache_hits"] == 0 and res["samples"] == 3
    assert res2["calls"] == 0 and res2["cache_hits"] == 18
    keys = db_rows(workspace, "SELECT DISTINCT key FROM calls WHERE cached=0")
    assert len(keys) == 18
    # every sample's outcome in the run item (sample 0 in its columns too); the samples of
    # a session are the server's three answers (which request got which is the client's
    # concurrency: compared as multisets)
    items = db_rows(workspace, "SELECT session_id, target_rank, samples FROM run_items")
    by_id = {s.id: i for i, s in enumerate(movies)}
    got = {}
    for it in items:
        i = by_id[it["session_id"]]
        per = [p["target_rank"] for p in json.loads(it["samples"])]
        assert sorted(per, key=str) == sorted((answer.rank_of(i, k) for k in range(3)), key=str)
        assert it["target_rank"] == per[0]
        got[i] = per
    # the mean over samples and the spread between the 3 per-sample metrics
    mean = sum(ndcg_at(r, 10) for per in got.values() for r in per) / 18
    per_sample = [sum(ndcg_at(got[i][k], 10) for i in got) / len(movies) for k in range(3)]
    m = res["metrics"]
    assert m["samples"] == 3
    assert m["ndcg@10"] == pytest.approx(mean, abs=1e-6)
    spread = m["spread"]["ndcg@10"]
    assert spread["min"] == pytest.approx(min(per_sample), abs=1e-6)
    assert spread["max"] == pytest.approx(max(per_sample), abs=1e-6)
    import statistics
    assert spread["sd"] == pytest.approx(statistics.stdev(per_sample), abs=1e-6)
    assert m["replies"] == 18
    assert res2["metrics"] == m                   # the rerun reads the same samples
    params = json.loads(db_rows(workspace, "SELECT params FROM runs")[0]["params"])
    assert params["samples"] == 3
    # the table: the spread under the CIs, row by row, and what it is
    flat = " ".join(out.split())
    assert "between-sample spread" in flat
    row = flat[flat.index("between-sample spread"):]
    sds = " ".join(f"{m['spread'][k]['sd']:.3f}" for k in
                   ("hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10", "mrr@10"))
    assert f"3 │ {sds.replace(' ', ' │ ')} │" in row


def test_sample_0_keeps_the_key_of_a_run_without_samples(workspace, data_dir, run_cli,
                                                         movies):
    """A run without --samples and sample 0 of --samples 2 share their calls: the second
    run sends only the second sample."""
    answer = Varying(movies)
    with WireServer("openai", answer_fn=answer) as srv:
        code, res, err = _recommend(run_cli, srv, workspace, data_dir, n=3)
        assert code == 0, err
        keys_before = {r["key"] for r in db_rows(workspace, "SELECT key FROM calls")}
        code, res2, err = _recommend(run_cli, srv, workspace, data_dir, "--samples", "2", n=3)
        assert code == 0, err
    assert res["calls"] == 3 and "samples" not in res["metrics"]
    assert res2["calls"] == 3 and res2["cache_hits"] == 3
    rows = db_rows(workspace, "SELECT key, request FROM calls WHERE cached=0")
    sample0 = {r["key"] for r in rows if "sample" not in json.loads(r["request"])["decoding"]}
    sample1 = {r["key"] for r in rows if json.loads(r["request"])["decoding"].get("sample") == 1}
    assert sample0 == keys_before and len(sample1) == 3
    # the key-only entry never reaches the server
    assert all("sample" not in b for _, b in srv.requests)
    # and the no-samples key is the one cache_key gives without a sample entry
    from re2llm_tui.llm.cache import cache_key

    for r in rows:
        req = json.loads(r["request"])
        assert r["key"] == cache_key(MODEL, req["messages"], req["decoding"])
        if req["decoding"].get("sample") == 1:
            dec = {k: v for k, v in req["decoding"].items() if k != "sample"}
            assert cache_key(MODEL, req["messages"], dec) in sample0
    # runs compare pairs the sessions: the sampled run's by the mean of its samples, with
    # its spread; `samples` in the config diff
    code, out, err = run_cli("runs", "compare", res["run_id"], res2["run_id"], "--json",
                             "--db", workspace)
    assert code == 0, err
    cmp = json.loads(out)
    assert cmp["n_shared"] == 3
    one, two = (r["metrics"] for r in cmp["runs"])
    assert "samples" not in one and two["samples"] == 2
    assert two["ndcg@10"] == pytest.approx(res2["metrics"]["ndcg@10"], abs=1e-6)
    assert one["ndcg@10"] == pytest.approx(res["metrics"]["ndcg@10"], abs=1e-6)
    assert "params.samples" in cmp["config_diff"]


@pytest.mark.parametrize("bad", ["0", "51", "-2"])
def test_samples_out_of_bounds_is_one_line(bad, workspace, data_dir, run_cli):
    code, out, err = run_cli("recommend", "-d", "movies", "-n", "2", "--samples", bad,
                             "--db", workspace, "--data-dir", data_dir)
    assert code == 2
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("re2llm-tui: error: --samples must be")


def test_the_dry_run_counts_n_times_the_calls(workspace, data_dir, run_cli, movies):
    with WireServer("openai", answer_fn=Varying(movies)) as srv:
        counts = {}
        for n in (1, 4):
            code, out, err = run_cli("recommend", "-d", "movies", "-n", "5", "--dry-run",
                                     "--json", "--samples", str(n), "--model", MODEL,
                                     "--api-base", srv.base_url, "--db", workspace,
                                     "--data-dir", data_dir, env={"OPENAI_API_KEY": "sk-test"})
            assert code == 0, err
            counts[n] = json.loads(out)["calls"]
        assert not srv.requests
    assert counts == {1: 5, 4: 20}


# --------------------------------------------------------------------------- evaluate, train

SCRIPTED = "scripted/samples"


def _varying_effects(sessions, ranks_of):
    """A scripted reply function whose k-th asking (0-based) of a (session, hint) prompt
    puts the target at ``ranks_of(session, hint)[k % 2]``; ``asked`` counts per prompt."""
    from test_rewards import scripted_effects

    asked: dict = {}
    lock = threading.Lock()

    def effect(s, hint):
        with lock:
            k = asked.get((s.id, hint), 0)
            asked[(s.id, hint)] = k + 1
        return ranks_of(s, hint)[k % 2]

    reply = scripted_effects(sessions, effect)
    reply.asked = asked
    return reply


@pytest.fixture
def two_hint_kb(workspace):
    from re2llm_tui.store.workspace import open_workspace

    db = open_workspace(workspace)
    actions = keep_hints_1_and_2(db)
    db.conn.close()
    return actions


def test_evaluate_samples_reports_the_mean_over_samples_and_the_spread(
        workspace, data_dir, run_cli, two_hint_kb):
    from re2llm_tui.data.release import load_sessions
    from re2llm_tui.evaluation.metrics import ndcg_at
    from re2llm_tui.llm.scripted import register_scripted

    test = load_sessions("games", "test", data_dir)[:3]
    h1, h2 = two_hint_kb[1][1], two_hint_kb[2][1]
    # per (session, action): the two samples' ranks
    table = {"": [(3, 1), (None, 4), (1, 1)], h1: [(1, 2), (None, None), (5, 2)],
             h2: [(None, 7), (2, 2), (1, 3)]}
    idx = {s.id: i for i, s in enumerate(test)}
    reply = _varying_effects(test, lambda s, hint: table[hint][idx[s.id]])
    register_scripted("scripted", reply)
    args = ["evaluate", "-d", "games", "--split", "test", "-n", "3", "--model", SCRIPTED,
            "--transport", "litellm", "--db", workspace, "--data-dir", data_dir, "--json",
            "--samples", "2"]
    code, out, err = run_cli(*args)
    assert code == 0, err
    data = json.loads(out)
    # 3 sessions x 3 actions (the oracle needs all) x 2 samples, each asked once per sample
    assert data["llm_calls"] == 18
    assert sorted(reply.asked.values()) == [2] * 9
    no_hint = data["rows"]["no hint"]
    assert no_hint["samples"] == 2
    want = sum(ndcg_at(r, 10) for pair in table[""] for r in pair) / 6
    assert no_hint["ndcg@10"] == pytest.approx(want, abs=1e-6)
    # the spread is that of the per-sample values of the stored samples
    runs = db_rows(workspace, "SELECT id, params FROM runs WHERE name LIKE '%: no hint'")
    items = db_rows(workspace, "SELECT session_id, target_rank, samples FROM run_items "
                               "WHERE run_id=?", [runs[0]["id"]])
    per = {it["session_id"]: [p["target_rank"] for p in json.loads(it["samples"])]
           for it in items}
    for sid, ranks in per.items():
        assert sorted(ranks, key=str) == sorted(table[""][idx[sid]], key=str)
    sample_means = [sum(ndcg_at(per[s.id][k], 10) for s in test) / 3 for k in range(2)]
    spread = no_hint["spread"]["ndcg@10"]
    assert spread["min"] == pytest.approx(min(sample_means), abs=1e-6)
    assert spread["max"] == pytest.approx(max(sample_means), abs=1e-6)
    assert json.loads(runs[0]["params"])["samples"] == 2
    # the oracle: per session the action with the best mean NDCG@10
    oracle = data["rows"]["oracle (upper bound)"]
    best = [max(sum(ndcg_at(r, 10) for r in table[h][i]) / 2 for h in ("", h1, h2))
            for i in range(3)]
    assert oracle["ndcg@10"] == pytest.approx(sum(best) / 3, abs=1e-6)
    # the reward table holds the mean of the samples, under its own context
    outcomes = db_rows(workspace, "SELECT context, session_id, hint_key, ndcg, samples "
                                  "FROM reward_outcomes")
    assert len(outcomes) == 9 and all(o["context"].endswith("|samples=2") for o in outcomes)
    for o in outcomes:
        ranks = [p["target_rank"] for p in json.loads(o["samples"])]
        assert o["ndcg"] == pytest.approx(sum(ndcg_at(r, 10) for r in ranks) / 2)
    # a greedy model's samples are said to be identical unless the server samples
    assert any("decodes greedily" in n for n in data["notes"])
    # the rerun: nothing sent; the human table shows the spread
    code, out, err = run_cli(*args[:-3], "--samples", "2")          # without --json
    assert code == 0, err
    assert sorted(reply.asked.values()) == [2] * 9
    assert "between-sample spread" in " ".join(out.split())
    # --samples with --permutations: one line
    code, out, err = run_cli(*args, "--permutations", "2")
    assert code == 2 and err.strip().splitlines()[-1].startswith(
        "re2llm-tui: error: --samples and --permutations")


def test_train_samples_averages_n_samples_per_outcome(workspace, data_dir, run_cli,
                                                       two_hint_kb):
    from re2llm_tui.data.release import load_sessions
    from re2llm_tui.evaluation.metrics import ndcg_at
    from re2llm_tui.llm.scripted import register_scripted

    train = load_sessions("games", "train", data_dir)[:4]
    h2 = two_hint_kb[2][1]
    reply = _varying_effects(train, lambda s, hint: (6, 2) if hint == "" else
                             ((1, 3) if hint == h2 else (None, 9)))
    register_scripted("scripted", reply)
    base = ["train", "-d", "games", "--steps", "256", "-n", "4", "--model", SCRIPTED,
            "--prefill", "--transport", "litellm", "--db", workspace, "--data-dir", data_dir,
            "--json"]
    code, out, err = run_cli(*base, "--samples", "2")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["llm_calls"] == 4 * 3 * 2 and summary["status"] == "done"
    outcomes = db_rows(workspace, "SELECT context, hint_key, ndcg, samples FROM reward_outcomes")
    assert len(outcomes) == 12
    mean = {"": (ndcg_at(6, 10) + ndcg_at(2, 10)) / 2}
    for o in outcomes:
        assert o["context"].endswith("|samples=2")
        ranks = [p["target_rank"] for p in json.loads(o["samples"])]
        assert o["ndcg"] == pytest.approx(sum(ndcg_at(r, 10) for r in ranks) / 2)
        if o["hint_key"] == "":
            assert o["ndcg"] == pytest.approx(mean[""])
    config = json.loads(db_rows(workspace, "SELECT config FROM train_runs")[0]["config"])
    assert config["samples"] == 2
    # the same command again: every outcome stored, nothing sent
    code, out, err = run_cli(*base, "--samples", "2")
    assert code == 0, err
    assert json.loads(out)["llm_calls"] == 0
    # without --samples: outcomes of one sample under the context without `samples`,
    # sample 0's calls served from the cache (4 x 3 requests, the first asking of each)
    code, out, err = run_cli(*base)
    assert code == 0, err
    assert json.loads(out)["llm_calls"] == 0
    single = db_rows(workspace, "SELECT context, samples FROM reward_outcomes "
                                "WHERE context NOT LIKE '%samples=%'")
    assert len(single) == 12 and all(o["samples"] is None for o in single)


def test_reward_workers_average_the_samples_as_one_process_does(workspace, data_dir):
    """--local-workers / --client-procs: the worker processes ask every sample, store the
    mean with every sample's rank, and the parent's table and counts agree."""
    from stub_server import StubServer
    from test_rewards import ACTIONS, ndcg

    from re2llm_tui.data.release import load_sessions
    from re2llm_tui.llm.client import LLMClient
    from re2llm_tui.utilization.rewards import LLMRewards

    sessions = load_sessions("games", "train", data_dir)[:6]
    effects = {"": (4, 2), ACTIONS[1][1]: (1, None), ACTIONS[2][1]: (None, 9),
               ACTIONS[3][1]: (3, 3)}
    reply = _varying_effects(sessions, lambda s, hint: effects[hint])
    with StubServer(reply_fn=lambda messages: reply(messages)) as srv:
        with LLMClient(workspace, model="openai/stub-model", api_bases=[srv.base_url],
                       concurrency=2, retry_base=0.01) as client:
            src = LLMRewards(client, sessions, ACTIONS, dataset="games", samples=2)
            final = src.prefill(workers=2)
            table = src.table()
            src.close()
            again = LLMRewards(client, sessions, ACTIONS, dataset="games", samples=2)
            assert again.missing_pairs() == []
            assert np.array_equal(again.table(), table)
        assert srv.n_requests == 6 * 4 * 2
    assert final.calls == 48 and final.failed == 0 and final.done == 24
    mean = {h: sum(ndcg(r) for r in pair) / 2 for h, pair in effects.items()}
    for i in range(6):
        for a, (_, text) in enumerate(ACTIONS):
            assert table[i, a] == pytest.approx(mean[text] - mean[""], abs=1e-6)
            assert sorted(again.sample_ranks(i, a), key=str) == sorted(effects[text], key=str)
