"""The embedded local model (SmolLM2-135M via llama-cpp-python) on real prompts, and the
same GGUF served by two real ``python -m llama_cpp.server`` processes behind the Router.

All tests here run the real model: marked slow (a few run in CI all the same)."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.slow

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")

from re2llm_tui.data.release import load_sessions  # noqa: E402
from re2llm_tui.evaluation.recommend import recommend  # noqa: E402
from re2llm_tui.llm import local  # noqa: E402
from re2llm_tui.llm.client import DEFAULT_MODEL, LLMClient  # noqa: E402


def _shortest(domain, data_dir, n):
    sessions = load_sessions(domain, "test", data_dir)
    return sorted(sessions, key=lambda s: len(s.prompt))[:n]


def test_local_model_ranks_a_real_prompt(workspace, data_dir):
    s = _shortest("movies", data_dir, 1)[0]
    with LLMClient(workspace, rank_method="logprob") as c:
        assert c.model == DEFAULT_MODEL and c.is_demo_model and c.rank_method == "logprob"
        c.check()
        r = c.rank_sync(s.prompt, s.candidates, k=10)
        again = c.rank_sync(s.prompt, s.candidates, k=10)
    assert r.ok and not r.cached and r.cost == 0
    # 10 distinct, real candidates, listed in the reply in ranking order
    assert len(r.ranking) == 10 and len(set(r.ranking)) == 10
    assert all(0 <= i < len(s.candidates) for i in r.ranking)
    assert r.text.splitlines() == [f"{n}. {s.candidates[i]}" for n, i in enumerate(r.ranking, 1)]
    assert r.hallucinations == [] and r.prompt_tokens > 100
    assert again.cached and again.ranking == r.ranking
    # each item was chosen by the model: the ranking is the top 10 of the model's own scores
    direct = local.rank_local(DEFAULT_MODEL, s.prompt, s.candidates, 10, "logprob")
    assert direct.ranking == r.ranking
    top = [direct.scores[i] for i in r.ranking]
    rest = [sc for i, sc in enumerate(direct.scores) if i not in r.ranking]
    assert top == sorted(top, reverse=True) and min(top) >= max(rest)
    con = sqlite3.connect(workspace)
    row = con.execute("SELECT purpose, status, cost, request FROM calls WHERE cached=0").fetchone()
    assert row[:3] == ("rank", "ok", 0.0)
    assert json.loads(row[3])["method_version"].startswith("logprob")


def test_default_sequential_choice_gives_distinct_real_candidates(workspace, data_dir):
    s = _shortest("movies", data_dir, 2)[1]
    with LLMClient(workspace) as c:
        assert c.rank_method == "sequential"          # the measured default
        r = c.rank_sync(s.prompt, s.candidates, k=10)
    assert r.ok and len(r.ranking) == 10 and len(set(r.ranking)) == 10
    assert all(0 <= i < len(s.candidates) for i in r.ranking)
    assert r.text.splitlines() == [f"{n}. {s.candidates[i]}" for n, i in enumerate(r.ranking, 1)]
    direct = local.rank_local(DEFAULT_MODEL, s.prompt, s.candidates, 10, "sequential")
    assert direct.ranking == r.ranking                 # deterministic, same as llama.cpp direct


def test_local_free_text_chat_is_unconstrained(workspace):
    convo = [{"role": "user", "content": "Name one colour."},
             {"role": "assistant", "content": "Blue."},
             {"role": "user", "content": "Why do people like it? Answer in one sentence."}]
    with LLMClient(workspace) as c:
        r = c.complete_sync(convo, purpose="reflection", max_tokens=40)
        again = c.complete_sync(convo, purpose="reflection", max_tokens=40)
    assert r.ok and r.text.strip() and r.completion_tokens > 0
    assert again.cached and again.text == r.text


def test_litellm_usage_reports_the_reused_prompt_tokens(data_dir):
    """The provider passes the engine's reused prompt tokens on (usage and hidden params)."""
    from re2llm_tui.llm.client import _litellm

    local.register()
    litellm = _litellm()
    s = _shortest("movies", data_dir, 1)[0]
    convo = [{"role": "user", "content": s.prompt}]
    first = litellm.completion(model=DEFAULT_MODEL, messages=convo, max_tokens=8)
    convo += [{"role": "assistant", "content": first.choices[0].message.content},
              {"role": "user", "content": "Why?"}]
    second = litellm.completion(model=DEFAULT_MODEL, messages=convo, max_tokens=8)
    assert second.usage.prompt_tokens > first.usage.prompt_tokens
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert first.usage.prompt_tokens - local.MIN_TAIL <= cached < second.usage.prompt_tokens
    assert second._hidden_params["local_cached_tokens"] == cached


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(port: int, log_path):
    # the server's Llama loads its weights as the in-process model does (plain CPU buffers)
    boot = ("import runpy; from re2llm_tui.llm.local import plain_cpu_weights\n"
            "with plain_cpu_weights(): runpy.run_module('llama_cpp.server', run_name='__main__')")
    cmd = [sys.executable, "-c", boot, "--model", local.gguf_path(),
           "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(local.N_THREADS),
           "--n_threads_batch", str(local.N_THREADS), "--n_ctx", str(local.N_CTX),
           "--n_batch", str(local.N_BATCH), "--logits_all", "False", "--seed", "0",
           "--model_alias", "smollm2-135m"]
    return subprocess.Popen(cmd, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)


def _wait_ready(port: int, proc, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError("llama_cpp.server did not start")


def test_two_llama_cpp_servers_through_the_router_match_in_process(workspace, data_dir,
                                                                   tmp_path):
    """recommend with two --api-base (Router) == the in-process model on the same sessions.

    Both paths run the same decode method: free greedy generation (temperature 0) of the
    list + parse_ranking.  A remote OpenAI-compatible server cannot run the in-process
    log-likelihood ranking, so the comparison uses the method both can run.
    """
    pytest.importorskip("uvicorn", reason="llama-cpp-python[server] is not installed")
    sessions = _shortest("movies", data_dir, 3)
    ports = [_free_port(), _free_port()]
    procs = [_start_server(p, tmp_path / f"server{i}.log") for i, p in enumerate(ports)]
    try:
        for p, proc in zip(ports, procs):
            _wait_ready(p, proc)
        bases = [f"http://127.0.0.1:{p}/v1" for p in ports]
        with LLMClient(workspace, model="openai/smollm2-135m", api_bases=bases,
                       concurrency=2, timeout=300) as remote:
            res_remote = recommend(sessions, remote, dataset="movies", split="test")
        answered = {r[0] for r in sqlite3.connect(workspace).execute(
            "SELECT DISTINCT api_base FROM calls WHERE run_id=? AND cached=0 AND status='ok'",
            [res_remote.run_id])}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    assert res_remote.status == "done" and res_remote.failed == 0
    assert answered == set(bases)                           # both servers answered
    with LLMClient(workspace, rank_method="generate") as inproc:
        res_local = recommend(sessions, inproc, dataset="movies", split="test")
    assert res_local.calls == 3                             # really ran, not served from cache
    con = sqlite3.connect(workspace)
    replies = {}
    for run in (res_remote.run_id, res_local.run_id):
        replies[run] = dict(con.execute(
            "SELECT session_id, reply FROM run_items WHERE run_id=?", [run]).fetchall())
    assert replies[res_remote.run_id] == replies[res_local.run_id]
    assert res_remote.ranks == res_local.ranks
    assert res_remote.metrics == res_local.metrics
