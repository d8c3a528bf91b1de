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
import sqlite3
import threading

import pytest
from wire_servers import WireServer

MODEL = "openai/gpt-5-mini"          # a reasoning model: its replies are samples


def _rows(db, sql, args=()):
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, args)]
    finally:
        conn.close()


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
    keys = _rows(workspace, "SELECT DISTINCT key FROM calls WHERE cached=0")
    assert len(keys) == 18
    # every sample's outcome in the run item (sample 0 in its columns too); the samples of
    # a session are the server's three answers (which request got which is the client's
    # concurrency: compared as multisets)
    items = _rows(workspace, "SELECT session_id, target_rank, samples FROM run_items")
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
    params = json.loads(_rows(workspace, "SELECT params FROM runs")[0]["params"])
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
        keys_before = {r["key"] for r in _rows(workspace, "SELECT key FROM calls")}
        code, res2, err = _recommend(run_cli, srv, workspace, data_dir, "--samples", "2", n=3)
        assert code == 0, err
    assert res["calls"] == 3 and "samples" not in res["metrics"]
    assert res2["calls"] == 3 and res2["cache_hits"] == 3
    rows = _rows(workspace, "SELECT key, request FROM calls WHERE cached=0")
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
