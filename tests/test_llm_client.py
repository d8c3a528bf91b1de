"""LLMClient through litellm: a scripted provider and a loopback OpenAI-compatible stub.

Covers the cache (hits, keys, per-call commit), retries (429, 500, timeouts, garbage JSON),
failures recorded and counted, budget stops, bounded concurrency, the Router over several
--api-base, bad input, and that keys never reach the workspace.

Every test runs twice (the ``transport`` fixture): once through litellm, once through the fast
HTTP path that ``auto`` picks for ``openai/`` and ``hosted_vllm/`` with ``--api-base`` -- the
same assertions hold for both; :func:`test_transports_store_the_same_rows` compares them
directly.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import threading
import time

import pytest
from stub_server import StubServer, messages_hash

from re2llm_tui.errors import UserError
from re2llm_tui.llm.client import BudgetExceeded, LLMClient
from re2llm_tui.llm.scripted import register_scripted


def _msg(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _rows(db_path, where: str = "1=1", args=()):
    con = sqlite3.connect(db_path)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(f"SELECT * FROM calls WHERE {where} ORDER BY id", args)]
    finally:
        con.close()


@pytest.fixture(params=["litellm", "fast"], autouse=True)
def transport(request, monkeypatch) -> str:
    """The path to OpenAI-compatible servers under test: ``$RE2LLM_TRANSPORT`` is
    ``litellm``, or ``auto`` (fast for ``openai/`` + ``--api-base``; litellm for the rest)."""
    monkeypatch.setenv("RE2LLM_TRANSPORT", "litellm" if request.param == "litellm" else "auto")
    return request.param


@pytest.fixture
def stub():
    with StubServer() as srv:
        yield srv


def _client(workspace, srv, **kw) -> LLMClient:
    kw.setdefault("retry_base", 0.01)
    kw.setdefault("timeout", 60.0)   # generous: a resent request would be paid twice
    c = LLMClient(workspace, model="openai/stub-model", api_bases=[srv.base_url], **kw)
    assert c.transport == os.environ["RE2LLM_TRANSPORT"].replace("auto", "fast")
    return c


# ------------------------------------------------------------------ scripted provider

def test_scripted_complete_is_cached_and_committed(workspace):
    log = register_scripted("scripted", lambda m: f"reply to {m[-1]['content']}")
    with LLMClient(workspace, model="scripted/a") as c:
        r1 = c.complete_sync(_msg("hello"))
        r2 = c.complete_sync(_msg("hello"))
        r3 = c.complete_sync(_msg("hello"), seed=1)           # decoding params are in the key
        r4 = c.complete_sync(_msg("hello"), temperature=0.7)
    assert r1.text == "reply to hello" and not r1.cached and r1.ok
    assert r2.cached and r2.text == r1.text and r2.cost == 0
    assert not r3.cached and not r4.cached
    assert len(log) == 3
    assert c.stats.calls == 3 and c.stats.cache_hits == 1
    # a fresh client (another process later) is served from the committed cache
    with LLMClient(workspace, model="scripted/a") as c2:
        r5 = c2.complete_sync(_msg("hello"))
    assert r5.cached and len(log) == 3
    rows = _rows(workspace)
    assert [r["cached"] for r in rows] == [0, 1, 0, 0, 1]
    assert rows[1]["cache_of"] == rows[0]["id"] and rows[1]["response"] is None
    req = json.loads(rows[0]["request"])
    assert req["messages"] == _msg("hello") and req["decoding"] == {"temperature": 0.0, "seed": 0}


def test_other_model_does_not_share_the_cache(workspace):
    log = register_scripted("scripted", lambda m: "x")
    with LLMClient(workspace, model="scripted/a") as a, LLMClient(workspace, model="scripted/b") as b:
        a.complete_sync(_msg("q"))
        r = b.complete_sync(_msg("q"))
    assert not r.cached and len(log) == 2


def test_multi_turn_chat_reaches_the_provider(workspace):
    log = register_scripted("scripted", lambda m: f"{len(m)} messages")
    convo = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a"},
             {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    with LLMClient(workspace, model="scripted/a") as c:
        r = c.complete_sync(convo, purpose="reflection")
    assert r.text == "4 messages"
    assert [m["content"] for m in log.calls[0]["messages"]] == ["be brief", "a", "b", "c"]
    assert _rows(workspace)[0]["purpose"] == "reflection"


def test_rank_remote_is_complete_plus_parse(workspace):
    register_scripted("scripted", lambda m: "1. Beta\n2. Not A Candidate\n3. Alpha\n4. Beta")
    with LLMClient(workspace, model="scripted/a") as c:
        assert c.rank_method == "generate" and not c.is_demo_model
        r = c.rank_sync("pick", ["Alpha", "Beta", "Gamma"], k=10)
        again = c.rank_sync("pick", ["Alpha", "Beta", "Gamma"], k=10)
    assert r.ranking == [1, 0]                       # distinct, in the reply's order
    assert r.hallucinations == ["Not A Candidate"]
    assert again.cached and again.ranking == r.ranking


def test_provider_exception_is_recorded_as_failed_and_not_cached(workspace):
    state = {"fail": True}

    def reply(m):
        if state["fail"]:
            raise ValueError("provider exploded")
        return "fine"

    register_scripted("scripted", reply)
    with LLMClient(workspace, model="scripted/a", max_retries=2, retry_base=0.001) as c:
        bad = c.complete_sync(_msg("q"))
        state["fail"] = False
        good = c.complete_sync(_msg("q"))
    assert bad.error and "exploded" in bad.error and bad.attempts == 3
    assert good.ok and not good.cached and good.text == "fine"
    assert [r["status"] for r in _rows(workspace)] == ["failed", "ok"]
    assert c.stats.failed == 1 and c.stats.calls == 2


def test_max_cost_stops_before_sending(workspace):
    log = register_scripted("scripted", lambda m: "ok", cost_per_call=0.01)
    with LLMClient(workspace, model="scripted/a", max_cost=0.025) as c:
        for i in range(3):
            assert c.complete_sync(_msg(f"q{i}")).cost == pytest.approx(0.01)
        with pytest.raises(BudgetExceeded, match="max-cost"):
            c.complete_sync(_msg("q3"))
        # cache hits stay free and allowed
        assert c.complete_sync(_msg("q0")).cached
    assert len(log) == 3 and c.stats.cost == pytest.approx(0.03)


def test_max_calls_stops_and_a_new_client_resumes(workspace):
    log = register_scripted("scripted", lambda m: "ok")
    with LLMClient(workspace, model="scripted/a", max_calls=2) as c:
        c.complete_sync(_msg("q0"))
        c.complete_sync(_msg("q1"))
        with pytest.raises(BudgetExceeded, match="max-calls 2"):
            c.complete_sync(_msg("q2"))
    with LLMClient(workspace, model="scripted/a", max_calls=2) as c2:
        done = [c2.complete_sync(_msg(f"q{i}")) for i in range(4)]
    assert [r.cached for r in done] == [True, True, False, False]
    assert len(log) == 4


def test_calls_started_and_a_shared_budget_that_starts_from_it(workspace):
    from re2llm_tui.llm.client import SharedBudget

    register_scripted("scripted", lambda m: "ok", cost_per_call=0.01)
    with LLMClient(workspace, model="scripted/a", max_calls=3) as c:
        c.complete_sync(_msg("q0"))
        c.complete_sync(_msg("q0"))                  # a hit is free
        assert c.calls_started == 1
        budget = SharedBudget()
        budget.start_from(c.calls_started, c.stats.cost)
        assert budget.calls.value == 1 and budget.cost.value == pytest.approx(0.01)
        with LLMClient(workspace, model="scripted/a", max_calls=3,
                       shared_budget=budget) as worker:
            worker.complete_sync(_msg("w1"))
            worker.complete_sync(_msg("w2"))
            with pytest.raises(BudgetExceeded, match="max-calls 3"):
                worker.complete_sync(_msg("w3"))
        # the parent takes over its workers' count: its own next request is over budget
        c.calls_started = budget.calls.value
        with pytest.raises(BudgetExceeded, match="max-calls 3"):
            c.complete_sync(_msg("q1"))


def test_run_sync_inside_a_running_loop_is_refused(workspace):
    register_scripted("scripted", lambda m: "ok")
    with LLMClient(workspace, model="scripted/a") as c:

        async def inside():
            with pytest.raises(RuntimeError, match="await"):
                c.run_sync(c.complete(_msg("q")))
            return (await c.complete(_msg("q"))).text

        assert asyncio.run(inside()) == "ok"


def test_identical_concurrent_requests_share_one_call(workspace):
    log = register_scripted("scripted", lambda m: "shared", latency=0.2)
    c = LLMClient(workspace, model="scripted/a", concurrency=4)

    async def go():
        return await asyncio.gather(*[c.complete(_msg("same")) for _ in range(5)])

    try:
        results = c.run_sync(go())
    finally:
        c.close()
    assert len(log) == 1
    assert all(r.text == "shared" for r in results)
    assert sum(not r.cached for r in results) == 1


def test_sync_wrappers_from_several_threads(workspace):
    log = register_scripted("scripted", lambda m: m[-1]["content"].upper())
    c = LLMClient(workspace, model="scripted/a")
    out: dict[int, str] = {}

    def work(i):
        out[i] = c.complete_sync(_msg(f"t{i}")).text

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    c.close()
    assert out == {i: f"T{i}" for i in range(6)} and len(log) == 6


# ------------------------------------------------------------------ loopback stub

def test_stub_retries_429_500_garbage_then_succeeds(workspace, stub):
    stub.inject("429", "500", "garbage")
    with _client(workspace, stub) as c:
        r = c.complete_sync(_msg("retry me"))
    assert r.ok and r.text.startswith("echo ") and r.attempts == 4
    assert stub.n_requests == 4 and c.stats.retries == 3
    row = _rows(workspace)[0]
    assert row["status"] == "ok" and row["attempts"] == 4
    assert row["api_base"] == stub.base_url


def test_stub_timeout_is_retried(workspace, stub):
    stub.hang_s = 12.0
    stub.inject("timeout")
    with _client(workspace, stub, timeout=1.0) as c:
        t0 = time.perf_counter()
        r = c.complete_sync(_msg("slow"))
        elapsed = time.perf_counter() - t0
    assert r.ok and r.attempts == 2
    assert elapsed < 8.0            # did not wait for the hung reply (slack for a busy machine)


def test_stub_failure_after_retries_is_counted_and_retried_later(workspace, stub):
    stub.inject("500", "500", "500")
    with _client(workspace, stub, max_retries=2) as c:
        bad = c.complete_sync(_msg("doomed"))
        assert not bad.ok and "InternalServerError" in bad.error and bad.attempts == 3
        assert c.stats.failed == 1
        good = c.complete_sync(_msg("doomed"))      # failures are never served from cache
    assert good.ok and not good.cached
    assert [r["status"] for r in _rows(workspace)] == ["failed", "ok"]


def test_stub_auth_error_is_not_retried_and_stops_the_run(workspace, stub):
    from re2llm_tui.llm.client import AuthFailed

    stub.inject("401", "401", "401")
    with _client(workspace, stub, max_retries=4) as c:
        with pytest.raises(AuthFailed, match="refused the credentials") as err:
            c.complete_sync(_msg("who am i"))
        assert "\n" not in str(err.value)
        # every later call stops at once: nothing more is sent
        with pytest.raises(AuthFailed):
            c.complete_sync(_msg("second"))
    assert stub.n_requests == 1


def test_empty_reply_is_retried_and_never_cached(workspace, stub):
    stub.inject("empty", "empty")
    with _client(workspace, stub, max_retries=1) as c:
        r = c.complete_sync(_msg("say nothing"))
        assert not r.ok and "no text" in r.error and r.attempts == 2
        # the failure is not a cache entry: the next run asks again and gets a real reply
        r2 = c.complete_sync(_msg("say nothing"))
    assert r2.ok and r2.text and not r2.cached


def test_concurrency_is_bounded(workspace):
    with StubServer(latency=0.1) as srv:
        c = _client(workspace, srv, concurrency=3)

        async def go():
            return await asyncio.gather(*[c.complete(_msg(f"c{i}")) for i in range(12)])

        t0 = time.perf_counter()
        try:
            results = c.run_sync(go())
        finally:
            c.close()
        elapsed = time.perf_counter() - t0
    assert all(r.ok for r in results)
    assert srv.max_in_flight <= 3
    assert elapsed >= 12 / 3 * 0.1 * 0.9


def test_router_spreads_calls_over_several_api_bases(workspace):
    with StubServer(latency=0.05) as a, StubServer(latency=0.05) as b:
        c = LLMClient(workspace, model="openai/stub-model", api_bases=[a.base_url, b.base_url],
                      concurrency=4, retry_base=0.01, timeout=60)
        c.check()

        async def go():
            return await asyncio.gather(*[c.complete(_msg(f"r{i}")) for i in range(24)])

        try:
            results = c.run_sync(go())
        finally:
            c.close()
    assert all(r.ok for r in results)
    assert a.n_requests > 0 and b.n_requests > 0 and a.n_requests + b.n_requests == 24
    bases = {r["api_base"] for r in _rows(workspace)}
    assert bases == {a.base_url, b.base_url}


def test_router_retries_on_another_failure(workspace):
    with StubServer() as a, StubServer() as b:
        a.inject("500")
        b.inject("500")
        c = LLMClient(workspace, model="openai/stub-model", api_bases=[a.base_url, b.base_url],
                      retry_base=0.01, timeout=60)
        try:
            r = c.complete_sync(_msg("x"))
        finally:
            c.close()
    assert r.ok and r.attempts >= 2


def test_api_key_never_reaches_the_workspace(workspace, stub, monkeypatch):
    secret = "sk-test-SECRET-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    with _client(workspace, stub) as c:
        c.complete_sync(_msg("keys?"))
    auth = [b for b in stub.bodies]
    assert auth  # the request went out
    for path in workspace.parent.glob(workspace.name + "*"):
        assert secret.encode() not in path.read_bytes()


# ------------------------------------------------------------------ bad input

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unknown_model_string_is_one_line_user_error(workspace):
    c = LLMClient(workspace, model="no-such-provider-xyz")
    with pytest.raises(UserError, match="unknown model string"):
        c.check()


def test_missing_key_is_one_line_user_error(workspace, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(UserError, match="OPENAI_API_KEY"):
        LLMClient(workspace, model="gpt-4o-mini").check()


def test_unreachable_api_base_is_one_line_user_error(workspace):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    with pytest.raises(UserError, match="unreachable"):
        LLMClient(workspace, model="openai/x", api_bases=[url]).check()


def test_bad_numbers_are_user_errors(workspace):
    with pytest.raises(UserError):
        LLMClient(workspace, concurrency=0)
    with pytest.raises(UserError):
        LLMClient(workspace, max_calls=-1)


def test_cache_key_row_matches_stub_hash(workspace, stub):
    """The stored request is exactly what the server received (used by the resume test)."""
    with _client(workspace, stub) as c:
        c.complete_sync(_msg("exact"))
    req = json.loads(_rows(workspace)[0]["request"])
    assert stub.requests[messages_hash(req["messages"])] == 1


def test_bare_model_name_with_api_base_is_openai_compatible(workspace, stub):
    with LLMClient(workspace, model="my-served-model", api_bases=[stub.base_url],
                   retry_base=0.01) as c:
        c.check()
        assert c.model == "openai/my-served-model"
        assert c.complete_sync(_msg("hi")).ok
    assert stub.bodies[-1]["model"] == "my-served-model"


def test_ollama_needs_no_key(workspace, monkeypatch):
    monkeypatch.delenv("OLLAMA_API_BASE", raising=False)
    LLMClient(workspace, model="ollama/llama3.1").check()   # no UserError: no key needed


def test_latency_is_the_calls_own_and_tokens_are_counted(workspace):
    """A call's latency starts when it is sent, not while it waits for a concurrency slot
    (the speed estimates of a proposed run read it); usage adds up in the stats."""
    with StubServer(latency=0.2) as srv:
        c = _client(workspace, srv, concurrency=1)

        async def go():
            return await asyncio.gather(*[c.complete(_msg(f"q{i}")) for i in range(4)])

        try:
            results = c.run_sync(go())
        finally:
            c.close()
    assert all(r.ok for r in results)
    assert max(r.latency_s for r in results) < 0.5          # never the 0.8 s of the queue
    assert c.stats.prompt_tokens == sum(r.prompt_tokens for r in results) > 0
    assert c.stats.completion_tokens == sum(r.completion_tokens for r in results) > 0


# ------------------------------------------------------------------ the two transports

def _run_both(tmp_path, monkeypatch, model, calls, *, faults=(), hostile=None, **client_kw):
    """The same calls through litellm and through the fast path, each into its own
    workspace against its own stub (``hostile(stub)`` sets its behaviour); returns
    {transport: (results, rows, bodies)}."""
    out = {}
    for kind in ("litellm", "fast"):
        monkeypatch.setenv("RE2LLM_TRANSPORT", kind)
        ws = tmp_path / f"{kind}.sqlite"
        with StubServer(port=0) as srv:
            srv.inject(*faults)
            if hostile is not None:
                hostile(srv)
            with LLMClient(ws, model=model, api_bases=[srv.base_url], retry_base=0.001,
                           timeout=60.0, max_retries=3, **client_kw) as c:
                assert c.transport == kind
                res = [c.complete_sync(m, **dec) for m, dec in calls]
            base = srv.base_url
            bodies = list(srv.bodies)
        rows = [{k: (v.replace(base, "BASE") if isinstance(v, str) else v)
                 for k, v in r.items() if k not in ("id", "created_at", "latency_s", "error")}
                for r in _rows(ws)]
        res = [(r.text, r.ok, r.cached, r.cost, r.prompt_tokens, r.completion_tokens,
                r.cached_tokens, r.attempts, r.error is None) for r in res]
        out[kind] = (res, rows, bodies)
    return out


@pytest.mark.parametrize("model", ["openai/stub-model", "hosted_vllm/stub-model",
                                   "openai/gpt-4o-mini"])
def test_transports_store_the_same_rows(tmp_path, monkeypatch, model):
    """Replies, usage, litellm's cost (gpt-4o-mini is priced), retries, cache hits, the
    request bodies the server saw and every stored column match between the two paths."""
    calls = [(_msg("one"), {}), (_msg("two"), {"max_tokens": 7, "top_p": 0.5}),
             (_msg("one"), {}), ([{"role": "system", "content": "be brief"},
                                 {"role": "user", "content": "three ünïcode"}], {"seed": 3})]
    both = _run_both(tmp_path, monkeypatch, model, calls, faults=("429", "500", "garbage"))
    (lres, lrows, lbodies), (fres, frows, fbodies) = both["litellm"], both["fast"]
    assert fres == lres
    assert frows == lrows
    assert fbodies == lbodies
    assert lres[0][7] == 4 and lres[2][2]              # 3 retries, then a hit
    if model == "openai/gpt-4o-mini":
        assert lres[0][3] > 0                           # priced by litellm's tables


def test_transports_fail_alike(tmp_path, monkeypatch):
    """Retries spent on 500s: a failed row for both, with the same status and attempts."""
    both = _run_both(tmp_path, monkeypatch, "openai/stub-model", [(_msg("x"), {})],
                     faults=("500",) * 4)
    (lres, lrows, _), (fres, frows, _) = both["litellm"], both["fast"]
    assert lres == fres and lres[0][1] is False and lres[0][7] == 4
    assert frows == lrows and frows[0]["status"] == "failed"


def test_transport_choice_is_checked(workspace, monkeypatch):
    monkeypatch.delenv("RE2LLM_TRANSPORT")
    with pytest.raises(UserError, match="unknown transport"):
        LLMClient(workspace, model="openai/x", transport="warp")
    register_scripted("scripted", lambda m: "ok")
    c = LLMClient(workspace, model="scripted/a", transport="fast")
    with pytest.raises(UserError, match="--transport fast needs"):
        c.check()
    assert LLMClient(workspace, model="scripted/a").transport == "litellm"
    assert LLMClient(workspace, model="anthropic/claude-x", api_bases=["http://h:1/v1"]) \
        .transport == "litellm"
    assert LLMClient(workspace, model="hosted_vllm/x", api_bases=["http://h:1/v1"]) \
        .transport == "fast"
    assert LLMClient(workspace, model="hosted_vllm/x", api_bases=["http://h:1/v1"],
                     transport="litellm").transport == "litellm"


def test_fast_path_leaves_no_open_connections(workspace, stub, capfd):
    """Sessions on the client's loop, on an ``asyncio.run`` loop and on a loop closed by
    hand are closed without "Unclosed client session" noise, closed client or not."""
    import gc

    c = LLMClient(workspace, model="hosted_vllm/stub-model", api_bases=[stub.base_url])
    assert c.transport == ("litellm" if os.environ["RE2LLM_TRANSPORT"] == "litellm" else "fast")
    assert asyncio.run(c.complete(_msg("a"))).ok
    assert c.complete_sync(_msg("b")).ok
    loop = asyncio.new_event_loop()
    assert loop.run_until_complete(c.complete(_msg("c"))).ok
    loop.close()
    c.close()
    leaked = LLMClient(workspace, model="hosted_vllm/stub-model", api_bases=[stub.base_url])
    loop = asyncio.new_event_loop()
    assert loop.run_until_complete(leaked.complete(_msg("d"))).ok
    loop.close()
    del leaked, loop
    gc.collect()
    assert "Unclosed" not in capfd.readouterr().err


def test_fast_path_reads_proxies_like_litellm(monkeypatch):
    """HTTP(S)_PROXY applies to a server unless NO_PROXY exempts its host (read once, not
    per request)."""
    from re2llm_tui.llm.transport import _env_proxy

    for var in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    assert _env_proxy("http://gpu1:8000/v1") is None
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1,.internal")
    assert _env_proxy("http://gpu1:8000/v1") == "http://proxy:3128"
    assert _env_proxy("http://127.0.0.1:8000/v1") is None
    assert _env_proxy("http://gpu2.internal:8000/v1") is None
    assert _env_proxy("https://gpu1:8000/v1") is None              # no HTTPS_PROXY set


# ------------------------------------------------------------------ hostile servers

_BAD_USAGE = {
    "negative": {"prompt_tokens": -1_000_000, "completion_tokens": -1_000_000,
                 "total_tokens": -2_000_000},
    "1e30": {"prompt_tokens": 1e30, "completion_tokens": 3, "total_tokens": 1e30},
    "10**30": {"prompt_tokens": 10 ** 30, "completion_tokens": 3, "total_tokens": 10 ** 30},
    "strings": {"prompt_tokens": "12", "completion_tokens": "3", "total_tokens": "15"},
    "fraction": {"prompt_tokens": 12.5, "completion_tokens": 3, "total_tokens": 15.5},
    "booleans": {"prompt_tokens": True, "completion_tokens": True, "total_tokens": 2},
    "nulls": {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None},
    "negative-cached": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13,
                        "prompt_tokens_details": {"cached_tokens": -500}},
    "missing": "omit",
    "a list": [1, 2, 3],
}


@pytest.mark.parametrize("usage", list(_BAD_USAGE.values()), ids=list(_BAD_USAGE))
def test_invalid_usage_is_counted_from_the_request(workspace, stub, usage):
    """Usage that is missing, negative, huge or not an integer: the call succeeds, its
    tokens are the request's own (litellm's token_counter) and its max_tokens, its cost is
    priced from those, and the row says so (usage_estimated); never a negative cost nor an
    OverflowError (before: -$0.675, or a traceback)."""
    from re2llm_tui.llm.litellm_import import import_litellm

    stub.usage = usage
    messages = _msg("estimate me")
    with LLMClient(workspace, model="openai/gpt-4o-mini", api_bases=[stub.base_url],
                   retry_base=0.01, timeout=5.0) as c:
        r = c.complete_sync(messages, max_tokens=40)
        assert c.stats.usage_estimated == 1 and c.stats.cost == r.cost
    assert r.ok and r.usage_estimated and stub.n_requests == 1
    expected_pt = import_litellm().token_counter(model="openai/gpt-4o-mini", messages=messages)
    assert (r.prompt_tokens, r.completion_tokens, r.cached_tokens) == (expected_pt, 40, 0)
    assert r.cost == pytest.approx(expected_pt * 0.15e-6 + 40 * 0.6e-6, rel=1e-6)
    row = _rows(workspace)[0]
    assert row["usage_estimated"] == 1 and row["cost"] == pytest.approx(r.cost)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (expected_pt, 40)


def test_valid_usage_is_the_servers(workspace, stub):
    stub.usage = {"prompt_tokens": 7, "completion_tokens": 2.0, "total_tokens": 9,
                  "prompt_tokens_details": {"cached_tokens": 3}}
    with LLMClient(workspace, model="openai/gpt-4o-mini", api_bases=[stub.base_url],
                   retry_base=0.01, timeout=5.0) as c:
        r = c.complete_sync(_msg("trust me"), max_tokens=40)
    assert r.ok and not r.usage_estimated and (r.prompt_tokens, r.completion_tokens) == (7, 2)
    assert _rows(workspace)[0]["usage_estimated"] == 0


def test_a_cost_litellm_gets_wrong_is_priced_from_the_tokens():
    """NaN, infinite or negative response_cost (a broken price table): the cost is
    litellm's per-token rates times the server's (valid) tokens instead."""
    from types import SimpleNamespace

    from re2llm_tui.llm.litellm_import import import_litellm
    from re2llm_tui.llm.transport import result_from

    litellm = import_litellm()
    for bad in (float("nan"), float("inf"), -3.0):
        resp = SimpleNamespace(
            choices=[SimpleNamespace(message=SimpleNamespace(content="hi"))],
            usage=SimpleNamespace(prompt_tokens=100, completion_tokens=10,
                                  prompt_tokens_details=None),
            _hidden_params={"response_cost": bad})
        r = result_from(resp, litellm, "openai/gpt-4o-mini")
        assert r.cost == pytest.approx(100 * 0.15e-6 + 10 * 0.6e-6) and not r.usage_estimated


def test_list_content_parts_are_joined_as_litellm_joins_them(workspace, stub):
    stub.content = [{"type": "text", "text": "1. Alpha\n"}, {"type": "image_url"},
                    {"type": "text", "text": "2. Beta"}]
    with _client(workspace, stub) as c:
        r = c.complete_sync(_msg("parts"))
    assert r.ok and r.text == "1. Alpha\n2. Beta"
    assert _rows(workspace)[0]["response"] == "1. Alpha\n2. Beta"


@pytest.mark.parametrize("content, reason", [
    ({"type": "text", "text": "x"}, "the reply's content is an object, not text"),
    (42, "the reply's content is a number, not text"),
    ([{"type": "image_url", "image_url": {"url": "x"}}],
     "the reply's content is a list without text parts (image_url)"),
    (["just", "strings"], "the reply's content is a list holding a str, not text parts"),
])
def test_content_that_is_not_text_is_a_failed_call(workspace, stub, content, reason):
    """Before (fast): "Error binding parameter 6" raised out of the client; (litellm): an
    "Invalid response object" retried 4 times.  Now: a failed call with the reason, sent
    once, on both transports alike."""
    stub.content = content
    with _client(workspace, stub) as c:
        r = c.complete_sync(_msg("odd content"))
    assert not r.ok and r.error == f"UnusableReply: {reason}" and r.attempts == 1
    assert stub.n_requests == 1
    row = _rows(workspace)[0]
    assert row["status"] == "failed" and row["response"] == "" and row["error"] == r.error


@pytest.mark.parametrize("hostile", ["endless", "big"])
def test_a_reply_over_max_reply_bytes_is_a_failed_call(workspace, stub, hostile):
    """Past --max-reply-bytes: a failed call at once (not retried), nothing stored; below it
    the same server's replies are fine."""
    if hostile == "endless":
        stub.endless = True
    else:
        stub.reply_bytes = 50_000
    with _client(workspace, stub, max_reply_bytes=8192, timeout=30.0) as c:
        t0 = time.perf_counter()
        r = c.complete_sync(_msg("too much"))
        elapsed = time.perf_counter() - t0
        assert not r.ok and r.attempts == 1 and stub.n_requests == 1
        assert r.error == "ReplyTooLarge: reply larger than 8 KiB (--max-reply-bytes)"
        assert elapsed < 15                     # not the 30 s timeout
        stub.endless, stub.reply_bytes = False, 4000
        ok = c.complete_sync(_msg("just enough"))
    assert ok.ok and len(ok.text) == 4000
    rows = _rows(workspace)
    assert rows[0]["status"] == "failed" and not rows[0]["response"]
    if hostile == "endless":
        assert stub.bytes_sent < 32 << 20      # the client hung up


def test_max_reply_bytes_is_checked(workspace, monkeypatch):
    with pytest.raises(UserError, match="--max-reply-bytes"):
        LLMClient(workspace, model="openai/x", api_bases=["http://h:1/v1"], max_reply_bytes=10)
    monkeypatch.setenv("RE2LLM_MAX_REPLY_BYTES", "lots")
    with pytest.raises(UserError, match="--max-reply-bytes"):
        LLMClient(workspace, model="openai/x", api_bases=["http://h:1/v1"])
    monkeypatch.setenv("RE2LLM_MAX_REPLY_BYTES", "65536")
    c = LLMClient(workspace, model="openai/x", api_bases=["http://h:1/v1"])
    assert c.options()["max_reply_bytes"] == 65536


@pytest.mark.parametrize("env_key", [None, "sk-env-0123"])
def test_credentials_in_the_url_are_sent_as_basic(workspace, stub, monkeypatch, env_key):
    """``http://user:pw@host/v1``: HTTP Basic from the URL (percent-escapes decoded), no
    Bearer even with an API key in the environment; the stored URL has no user info."""
    import base64

    if env_key:
        monkeypatch.setenv("OPENAI_API_KEY", env_key)
    else:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    stub.basic_auth = ("bob", "p@ss:word")
    base = stub.base_url.replace("http://", "http://bob:p%40ss%3Aword@")
    with LLMClient(workspace, model="openai/stub-model", api_bases=[base], retry_base=0.01,
                   timeout=5.0) as c:
        c.check()
        r = c.complete_sync(_msg("let me in"))
    assert r.ok, r.error
    assert stub.auth_headers == ["Basic " + base64.b64encode(b"bob:p@ss:word").decode()]
    assert _rows(workspace)[0]["api_base"] == stub.base_url
    for path in workspace.parent.glob(workspace.name + "*"):
        assert b"p@ss" not in path.read_bytes() and b"p%40ss" not in path.read_bytes()


_HOSTILE = {
    "negative-usage": lambda s: setattr(s, "usage", _BAD_USAGE["negative"]),
    "1e30-usage": lambda s: setattr(s, "usage", _BAD_USAGE["1e30"]),
    "no-usage": lambda s: setattr(s, "usage", "omit"),
    "list-content": lambda s: setattr(s, "content", [{"type": "text", "text": "a "},
                                                     {"type": "text", "text": "b"}]),
    "object-content": lambda s: setattr(s, "content", {"text": "x"}),
    "big-reply": lambda s: setattr(s, "reply_bytes", 20_000),
}


@pytest.mark.parametrize("hostile", list(_HOSTILE), ids=list(_HOSTILE))
def test_transports_store_the_same_rows_for_hostile_replies(tmp_path, monkeypatch, hostile):
    calls = [(_msg("one"), {"max_tokens": 30}), (_msg("two"), {}), (_msg("one"),
                                                                   {"max_tokens": 30})]
    both = _run_both(tmp_path, monkeypatch, "openai/gpt-4o-mini", calls,
                     hostile=_HOSTILE[hostile], max_reply_bytes=16384)
    (lres, lrows, lbodies), (fres, frows, fbodies) = both["litellm"], both["fast"]
    assert fres == lres and frows == lrows and fbodies == lbodies
    errors = {k: [r["error"] for r in _rows(tmp_path / f"{k}.sqlite")] for k in both}
    assert errors["litellm"] == errors["fast"]
    assert all(r[3] >= 0 for r in lres)                 # never a negative cost
