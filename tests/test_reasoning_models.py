"""Reasoning models end to end (issue 20), against loopback servers speaking each wire format
(tests/wire_servers.py) on both transports where both apply.

* a greedy model's requests and cache keys are what they were (byte for byte);
* ``openai/gpt-5-mini`` against a server that refuses temperature 0 completes with the
  right rankings, says its replies are sampled, and records the server's 300 reasoning
  tokens per call; ``--reasoning-effort`` reaches the request and the cache key;
* the same final answers score identically with and without ``<think>`` /
  ``reasoning_content``; the thinking is stored only in ``calls.reasoning``;
* a reply cut off by its output limit before any answer is a failed call, not retried,
  never cached, whose reason names the flag;
* a request the provider refuses as invalid (400 ``invalid_request_error``, 404) stops the
  run within the first few requests, one line, exit 2, the run marked failed;
* ``explore`` against a thinking server stores no thinking text anywhere but
  ``calls.reasoning``; the dry run of a reasoning model bounds by the limit it sends.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from conftest import db_rows, last_error_line
from stub_server import StubServer
from wire_servers import WireServer

TRANSPORTS = ["fast", "litellm"]
MARK = "THINKING-MARKER"


@pytest.fixture(scope="module")
def movies(data_dir):
    from re2llm_tui.data.release import load_sessions

    return load_sessions("movies", "test", data_dir)[:20]


def ranker(sessions):
    """A scripted model: for session i, a 10-line ranking with the target at rank
    ``i % 13 + 1`` (left out past 10); ``thinking`` drafts another numbered list (the
    candidates backwards, the target first) that a parser must never read."""
    by_prompt = {s.prompt.strip(): (i, s) for i, s in enumerate(sessions)}

    def find(prompt):
        p = prompt.strip()
        for sp, hit in by_prompt.items():
            if p.startswith(sp):
                return hit
        return None, None

    def answer(prompt):
        i, s = find(prompt)
        if s is None:
            return "No"
        others = [c for j, c in enumerate(s.candidates) if j != s.target_index]
        pos = i % 13
        listed = others[:10]
        if pos < 10:
            listed = others[:pos] + [s.candidates[s.target_index]] + others[pos:9]
        return "\n".join(f"{n}. {t}" for n, t in enumerate(listed, 1))

    def thinking(prompt):
        i, s = find(prompt)
        if s is None:
            return f"{MARK} nothing to rank.\n1. Draft Title One"
        draft = [s.candidates[s.target_index]] + list(reversed(s.candidates))[:9]
        return f"{MARK} let me draft.\n" + "\n".join(f"{n}. {t}" for n, t in
                                                    enumerate(draft, 1))

    return answer, thinking


def _recommend(run_cli, srv, model, workspace, data_dir, *extra, n=20, transport="fast"):
    code, out, err = run_cli("recommend", "-d", "movies", "-n", str(n), "--json",
                             "--model", model, "--api-base", srv.base_url, "--db", workspace,
                             "--data-dir", data_dir, "--transport", transport, *extra,
                             env={"OPENAI_API_KEY": "sk-test"})
    return code, (json.loads(out) if code == 0 and out.strip() else None), err


# --------------------------------------------------------------------------- item 1

def test_a_greedy_models_requests_and_cache_keys_are_unchanged(workspace, data_dir, run_cli,
                                                               movies):
    """Regression guard: a model that decodes greedily sends exactly what it sent before
    (temperature 0, seed 0, max_tokens 512, in that order) and keys the cache as before."""
    from re2llm_tui.llm.cache import cache_key

    answer, _ = ranker(movies)
    with WireServer("openai", answer_fn=answer) as srv:
        code, res, err = _recommend(run_cli, srv, "hosted_vllm/plain", workspace, data_dir,
                                    n=3)
        assert code == 0, err
        bodies = [b for _, b in srv.requests]
    assert len(bodies) == 3
    for body in bodies:
        assert list(body) == ["model", "messages", "temperature", "seed", "max_tokens"]
        assert (body["temperature"], body["seed"], body["max_tokens"]) == (0.0, 0, 512)
    for call in db_rows(workspace, "SELECT key, request FROM calls"):
        req = json.loads(call["request"])
        assert req["decoding"] == {"temperature": 0.0, "seed": 0, "max_tokens": 512}
        assert call["key"] == cache_key("hosted_vllm/plain", req["messages"],
                                        {"temperature": 0.0, "seed": 0, "max_tokens": 512})
    params = json.loads(db_rows(workspace, "SELECT params FROM runs")[0]["params"])
    assert "sampled" not in params and params["temperature"] == 0.0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_gpt5_mini_against_a_server_refusing_temperature_completes_sampled(
        transport, workspace, data_dir, run_cli, movies):
    answer, _ = ranker(movies)
    srv = WireServer("openai", answer_fn=answer, reasoning_tokens=300).start()
    try:
        code, res, err = _recommend(run_cli, srv, "openai/gpt-5-mini", workspace, data_dir,
                                    transport=transport)
        bodies = [b for _, b in srv.requests]
        # the human summary (served from the cache) says the replies are sampled too
        code2, out, err2 = run_cli("recommend", "-d", "movies", "-n", "20", "--model",
                                   "openai/gpt-5-mini", "--api-base", srv.base_url, "--db",
                                   workspace, "--data-dir", data_dir, "--transport",
                                   transport, env={"OPENAI_API_KEY": "sk-test"})
    finally:
        srv.stop()
    assert code == 0, err
    assert res["status"] == "done" and res["failed"] == 0 and res["done"] == 20
    assert res["sampled"] is True and res["reasoning_tokens"] == 300 * 20
    assert all("temperature" not in b and "max_tokens" not in b for b in bodies)
    assert all(b["max_completion_tokens"] > 512 for b in bodies)    # room for reasoning
    calls = db_rows(workspace, "SELECT reasoning_tokens, status FROM calls WHERE cached=0")
    assert [c["reasoning_tokens"] for c in calls] == [300] * 20
    # the right rankings: the target where the scripted answer put it
    items = db_rows(workspace, "SELECT session_id, target_rank FROM run_items")
    want = {s.id: (i % 13 + 1 if i % 13 < 10 else None) for i, s in enumerate(movies)}
    assert {r["session_id"]: r["target_rank"] for r in items} == want
    run = db_rows(workspace, "SELECT params FROM runs")[0]
    params = json.loads(run["params"])
    assert params["sampled"] is True and params["temperature"] is None
    assert params["limit_param"] == "max_completion_tokens"
    assert code2 == 0, err2
    flat = " ".join(out.split())
    assert "replies are sampled, not greedy" in flat


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_reasoning_effort_reaches_the_request_the_key_and_runs_compare(
        transport, workspace, data_dir, run_cli, movies):
    answer, _ = ranker(movies)
    with WireServer("openai", answer_fn=answer) as srv:
        code, low, err = _recommend(run_cli, srv, "openai/gpt-5-mini", workspace, data_dir,
                                    "--reasoning-effort", "low", n=3, transport=transport)
        assert code == 0, err
        assert [b.get("reasoning_effort") for _, b in srv.requests] == ["low"] * 3
        code, high, err = _recommend(run_cli, srv, "openai/gpt-5-mini", workspace, data_dir,
                                     "--reasoning-effort", "high", n=3, transport=transport)
        assert code == 0, err
        # another effort is another request: nothing served from the low run's cache
        assert high["calls"] == 3 and high["cache_hits"] == 0
        assert [b.get("reasoning_effort") for _, b in srv.requests[3:]] == ["high"] * 3
        limits = [b["max_completion_tokens"] for _, b in srv.requests]
        assert limits[0] < limits[3]                   # the limit follows the effort
    keys = {r["key"] for r in db_rows(workspace, "SELECT key FROM calls")}
    assert len(keys) == 6
    code, out, err = run_cli("runs", "compare", str(low["run_id"]), str(high["run_id"]),
                             "--db", workspace, "--json")
    assert code == 0, err
    text = json.dumps(json.loads(out))
    assert "reasoning_effort" in text and '"low"' in text and '"high"' in text


def test_an_effort_the_model_refuses_is_one_line_before_any_call(workspace, data_dir,
                                                                  run_cli):
    with WireServer("openai") as srv:
        code, _, err = _recommend(run_cli, srv, "openai/gpt-4o-mini", workspace, data_dir,
                                  "--reasoning-effort", "high", n=2)
        assert srv.requests == []
    assert code == 2
    assert "--reasoning-effort" in last_error_line(err)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_reply_cut_off_by_the_limit_is_failed_not_retried_not_cached(
        transport, workspace, data_dir, run_cli, movies):
    answer, _ = ranker(movies)
    # the server's reasoning (5000 tokens) uses up effort low's limit (512 + 2048)
    with WireServer("openai", answer_fn=answer, reasoning_tokens=5000) as srv:
        code, _, err = _recommend(run_cli, srv, "openai/gpt-5-mini", workspace, data_dir,
                                  "--reasoning-effort", "low", "--retries", "3", n=2,
                                  transport=transport)
        assert len(srv.requests) == 2                  # not retried
        line = last_error_line(err)
        assert code == 1
        assert "cut off by the output limit" in line and "--reasoning-effort" in line
        calls = db_rows(workspace, "SELECT status, error, response FROM calls")
        assert [c["status"] for c in calls] == ["failed", "failed"]
        assert "raise" not in calls[0]["error"] or "--reasoning-effort" in calls[0]["error"]
        assert "--reasoning-effort" in calls[0]["error"] and not calls[0]["response"]
        _recommend(run_cli, srv, "openai/gpt-5-mini", workspace, data_dir,
                   "--reasoning-effort", "low", "--retries", "0", n=2, transport=transport)
        assert len(srv.requests) == 4                  # never served from the cache


# --------------------------------------------------------------------------- item 2

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_same_answers_score_the_same_with_or_without_thinking(
        transport, tmp_path, data_dir, run_cli, movies):
    answer, thinking = ranker(movies)
    metrics, stored = {}, {}
    for kind, model in (("openai", "hosted_vllm/plain"), ("vllm_think", "hosted_vllm/qwen3"),
                        ("deepseek", "openai/deepseek-r1")):
        db = tmp_path / f"{kind}.sqlite"
        with WireServer(kind, answer_fn=answer, thinking_fn=thinking,
                        reasoning_models=()) as srv:
            code, res, err = _recommend(run_cli, srv, model, db, data_dir,
                                        transport=transport)
        assert code == 0, err
        metrics[kind] = res["metrics"]
        stored[kind] = db_rows(db, "SELECT response, reasoning FROM calls ORDER BY id")
    assert metrics["vllm_think"] == metrics["openai"] == metrics["deepseek"]
    plain = [r["response"] for r in stored["openai"]]
    for kind in ("vllm_think", "deepseek"):
        assert sorted(r["response"] for r in stored[kind]) == sorted(plain)
        assert all(MARK not in r["response"] for r in stored[kind])
        assert all(r["reasoning"] and r["reasoning"].startswith(MARK) for r in stored[kind])
    assert all(r["reasoning"] is None for r in stored["openai"])


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_cache_hit_returns_the_reasoning(transport, workspace):
    from re2llm_tui.llm.client import LLMClient

    with WireServer("deepseek", thinking_fn=lambda p: f"{MARK} thinking") as srv, \
            LLMClient(workspace, model="openai/deepseek-r1", api_bases=[srv.base_url],
                      transport=transport) as client:
        first = client.complete_sync([{"role": "user", "content": "rank"}])
        again = client.complete_sync([{"role": "user", "content": "rank"}])
        assert len(srv.requests) == 1
    assert first.ok and not first.cached and again.cached
    assert first.text == again.text == "1. Heat (1995)\n2. Casino (1995)"
    assert first.reasoning == again.reasoning == f"{MARK} thinking"
    assert first.reasoning_tokens == again.reasoning_tokens > 0


# --------------------------------------------------------------------------- item 3

def test_runs_show_and_list_carry_reasoning_tokens(workspace, data_dir, run_cli, movies):
    answer, _ = ranker(movies)
    with WireServer("openai", answer_fn=answer, reasoning_tokens=300) as srv:
        code, res, err = _recommend(run_cli, srv, "openai/gpt-5-mini", workspace, data_dir,
                                    n=3)
    assert code == 0, err
    code, out, err = run_cli("runs", "show", str(res["run_id"]), "--db", workspace, "--json")
    assert code == 0, err
    assert json.loads(out)["reasoning_tokens"] == 900
    code, out, err = run_cli("runs", "show", str(res["run_id"]), "--db", workspace)
    flat = " ".join(out.split())
    assert "(900 of them reasoning)" in flat and "replies are sampled" in flat
    code, out, err = run_cli("runs", "list", "--db", workspace, "--json")
    assert json.loads(out)[0]["reasoning_tokens"] == 900
    code, out, err = run_cli("runs", "list", "--db", workspace, env={"COLUMNS": "250"})
    assert "reasoning tok" in out and "900" in out


def test_the_dry_run_of_a_reasoning_model_bounds_by_the_limit_sent(workspace, data_dir,
                                                                    run_cli, movies):
    code, out, err = run_cli("recommend", "-d", "movies", "-n", "5", "--json", "--dry-run",
                             "--model", "gpt-5-mini", "--reasoning-effort", "low",
                             "--db", workspace, "--data-dir", data_dir)
    assert code == 0, err
    est = json.loads(out)
    # the upper bound is the limit actually sent: 512 answer + 2048 reasoning at effort low
    assert est["completion_tokens"] == 5 * 2560
    notes = " ".join(est["notes"])
    assert "reasoning model" in notes and "assumes 2048 reasoning tokens" in notes
    assert "effort low" in notes and "max_completion_tokens 2560" in notes
    assert est["expected_completion_tokens"] > 5 * 2048       # the reasoning is billed
    # measured replies of this model at this effort replace the assumption
    answer, _ = ranker(movies)
    with WireServer("openai", answer_fn=answer, reasoning_tokens=300) as srv:
        code, _, err = _recommend(run_cli, srv, "openai/gpt-5-mini", workspace, data_dir,
                                  "--reasoning-effort", "low", n=5)
        assert code == 0, err
    code, out, err = run_cli("recommend", "-d", "movies", "-n", "5", "--json", "--dry-run",
                             "--model", "openai/gpt-5-mini", "--reasoning-effort", "low",
                             "--db", workspace, "--data-dir", data_dir)
    est = json.loads(out)
    assert est["to_pay"] == 0                          # all five in the cache now
    code, out, err = run_cli("recommend", "-d", "movies", "-n", "8", "--json", "--dry-run",
                             "--model", "openai/gpt-5-mini", "--reasoning-effort", "low",
                             "--db", workspace, "--data-dir", data_dir)
    est = json.loads(out)
    assert est["to_pay"] == 3 and "measured here" in est["completion_basis"]
    assert est["completion_tokens"] < 3 * 2560


# --------------------------------------------------------------------------- item 4

@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("fault,words", [
    ("400", "400 Unsupported parameter: 'seed'"),
    ("404", "404 The model `stub-model` does not exist."),
])
def test_a_request_refused_as_invalid_stops_the_run_at_once(
        fault, words, transport, workspace, data_dir, run_cli):
    with StubServer(fail_all=fault) as srv:
        code, out, err = run_cli("recommend", "-n", "20", "--model", "hosted_vllm/stub-model",
                                 "--api-base", srv.base_url, "--db", workspace,
                                 "--data-dir", data_dir, "--transport", transport)
        sent = srv.n_requests
    assert code == 2, err
    line = last_error_line(err)
    assert sent <= 8                                   # the first few in flight, not 20
    assert "refused the request as invalid" in line and words in line
    assert "--model" in line or "--reasoning" in line
    run, = db_rows(workspace, "SELECT status, error, pid FROM runs")
    assert run["status"] == "failed" and run["pid"] is None and words in run["error"]
    assert "NDCG" not in out


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_server_refusing_temperature_0_names_the_flag_and_the_flag_fixes_it(
        transport, workspace, data_dir, run_cli, movies):
    """An unknown-to-litellm name for a reasoning model: temperature 0 is sent, the server
    400s, the line names --no-temperature; declared (and remembered), the run completes."""
    answer, _ = ranker(movies)
    with WireServer("openai", answer_fn=answer) as srv:
        code, _, err = _recommend(run_cli, srv, "hosted_vllm/gpt-5-mini", workspace, data_dir,
                                  n=20, transport=transport)
        assert code == 2 and len(srv.requests) <= 8
        line = last_error_line(err)
        assert "temperature" in line and "--no-temperature" in line
        code, _, err = _recommend(run_cli, srv, "hosted_vllm/gpt-5-mini", workspace, data_dir,
                                  "--no-temperature", n=3, transport=transport)
        assert code == 2 and "--reasoning" in last_error_line(err)     # next: max_tokens refused
        code, res, err = _recommend(run_cli, srv, "hosted_vllm/gpt-5-mini", workspace,
                                    data_dir, "--reasoning", n=3, transport=transport)
        assert code == 0, err                          # --no-temperature was remembered
        assert res["sampled"] is True and res["failed"] == 0


# --------------------------------------------------------------------------- explore

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_explore_against_a_thinking_server_keeps_thinking_in_calls_reasoning_only(
        transport, workspace, data_dir, run_cli):
    from re2llm_tui.data.release import load_sessions

    sessions = load_sessions("movies", "train", data_dir)[:2]
    answer, thinking = ranker(sessions)
    target_titles = {s.candidates[s.target_index] for s in sessions}

    def reply(prompt):
        if "infer the possible mistakes" in prompt:
            return "I ignored the user's recent genres."
        if "The correct answer is" in prompt:
            return "The target fits the user's taste for older dramas."
        if "write at most" in prompt:
            return ("1. Weigh the most recent items in the session more heavily.\n"
                    "2. Prefer films from the same decade as the last ones watched.")
        out = answer(prompt)
        # miss every target (so each session is reflected on)
        return "\n".join(ln for ln in out.splitlines()
                         if not any(t in ln for t in target_titles)) or "1. Nothing"

    def think(prompt):
        titles = "; ".join(sorted(target_titles))
        return f"{MARK} the answer is {titles}.\n1. Recommend {titles} first."

    with WireServer("vllm_think", answer_fn=reply, thinking_fn=think) as srv:
        code, out, err = run_cli("explore", "-d", "movies", "--sessions", "2", "--json",
                                 "--model", "hosted_vllm/qwen3", "--api-base", srv.base_url,
                                 "--db", workspace, "--data-dir", data_dir,
                                 env={"RE2LLM_TRANSPORT": transport})
    assert code == 0, err
    summary = json.loads(out)
    assert summary["reflected"] == 2 and summary["proposed"] >= 2
    conn = sqlite3.connect(workspace)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    found = []
    for t in tables:
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({t})")]
        for c in cols:
            if t == "calls" and c == "reasoning":
                continue
            n = conn.execute(f"SELECT COUNT(*) FROM {t} WHERE CAST({c} AS TEXT) LIKE ?",
                             [f"%{MARK}%"]).fetchone()[0]
            if n:
                found.append((t, c, n))
    n_reasoning = conn.execute("SELECT COUNT(*) FROM calls WHERE reasoning LIKE ?",
                               [f"{MARK}%"]).fetchone()[0]
    hints = [r[0] for r in conn.execute("SELECT text FROM hints")]
    conn.close()
    assert found == []                       # no thinking in any hint, reflection or run
    assert n_reasoning >= 8                  # 4 turns x 2 sessions at least, with the call
    assert not any(t in h for h in hints for t in target_titles)
