"""``recommend`` as a real process against a hostile OpenAI-compatible server (the loopback
stub's hostile behaviours), on both transports:

* usage that is negative, 1e30, 10**30 or not an integer never makes a negative cost nor a
  traceback; such calls are counted from the request (``calls.usage_estimated``), said so in
  the summary, and ``--max-cost`` still stops the run (issue 19, case 3);
* an endless chunked body and a 50 MB body are failed calls within seconds, not retried, with
  the client's memory bounded and nothing stored beyond ``--max-reply-bytes`` (case 4);
* list content is joined, object content is a failed call with its reason (case 5);
* ``--api-base http://user:pw@host/v1`` reaches a server that wants HTTP Basic, and the
  password is nowhere in the workspace nor the output (case 14).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stub_server import StubServer

ROOT = Path(__file__).resolve().parent.parent
PRICED = "openai/gpt-4o-mini"          # priced by litellm's local cost map


@pytest.fixture(params=["litellm", "fast"])
def transport(request) -> str:
    return request.param


def _cmd(*args) -> list[str]:
    return [sys.executable, "-c", "from re2llm_tui.cli import entry; entry()", *map(str, args)]


def _env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="400")   # summary lines unwrapped
    env.pop("OPENAI_API_KEY", None)
    env.update(extra)
    return env


def _recommend(workspace, data_dir, base, transport, *args, env=None, timeout=240):
    cmd = _cmd("recommend", "--dataset", "games", "--model", PRICED, "--api-base", base,
               "--transport", transport, "--db", workspace, "--data-dir", data_dir, *args)
    return subprocess.run(cmd, cwd=ROOT, env=env or _env(), capture_output=True, text=True,
                          timeout=timeout)


def _rows(workspace, sql, args=()):
    con = sqlite3.connect(workspace)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def _no_traceback(done):
    assert "Traceback" not in done.stderr and "Error binding" not in done.stderr, \
        done.stderr[-3000:]


# ------------------------------------------------------------------ case 3: usage

@pytest.mark.parametrize("usage", [
    {"prompt_tokens": -1_000_000, "completion_tokens": -1_000_000, "total_tokens": -2_000_000},
    {"prompt_tokens": 1e30, "completion_tokens": 5, "total_tokens": 1e30},
    {"prompt_tokens": 10 ** 30, "completion_tokens": 5, "total_tokens": 10 ** 30},
    {"prompt_tokens": "12", "completion_tokens": 3.5, "total_tokens": None},
], ids=["negative", "1e30", "10**30", "not-integers"])
def test_invalid_usage_is_estimated_and_max_cost_still_stops(workspace, data_dir, transport,
                                                             usage):
    """Before: -$0.675 per call and --max-cost never reached (negative), an OverflowError
    traceback with the run left ``running`` (10**30).  Now: each call costs what its request
    and max_tokens would, the budget stops the run after the first call (exit 3), the run is
    ``stopped`` and the summary says the cost was estimated."""
    with StubServer() as srv:
        srv.usage = usage
        done = _recommend(workspace, data_dir, srv.base_url, transport, "--limit", "4",
                          "--concurrency", "1", "--max-cost", "0.0001")
        n_requests = srv.n_requests
    _no_traceback(done)
    assert done.returncode == 3, done.stderr[-3000:]
    assert "max-cost" in done.stderr
    assert "usage from the server was missing or invalid" in done.stdout
    calls = _rows(workspace, "SELECT * FROM calls WHERE cached=0")
    assert len(calls) == n_requests == 1             # the first call spent the budget
    c = calls[0]
    assert c["status"] == "ok" and c["usage_estimated"] == 1
    # the estimate: the prompt's own tokens, and the output limit sent (rank: max_tokens)
    request = json.loads(c["request"])
    assert c["completion_tokens"] == request["decoding"]["max_tokens"] > 0
    assert 100 < c["prompt_tokens"] < 10_000
    assert c["cost"] > 0.0001
    runs = _rows(workspace, "SELECT status FROM runs")
    assert [r["status"] for r in runs] == ["stopped"]


def test_invalid_usage_never_lowers_the_spend(workspace, data_dir, transport):
    """Without a budget the run ends done; every call's cost is positive and the "cache
    saved" figure of a rerun is too (before: -$0.675 per call, and a negative saving)."""
    usage = {"prompt_tokens": -10 ** 6, "completion_tokens": -10 ** 6, "total_tokens": 0}
    with StubServer() as srv:
        srv.usage = usage
        first = _recommend(workspace, data_dir, srv.base_url, transport, "--limit", "3",
                           "--json")
        again = _recommend(workspace, data_dir, srv.base_url, transport, "--limit", "3",
                           "--json", "--no-resume")
    for done in (first, again):
        _no_traceback(done)
        assert done.returncode == 0, done.stderr[-3000:]
    one, two = json.loads(first.stdout), json.loads(again.stdout)
    assert one["cost"] > 0 and one["cache_saved"]["usage_estimated"] == 3
    assert two["cost"] == 0 and two["cache_hits"] == 3
    assert two["cache_saved"]["cost"] == pytest.approx(one["cost"], rel=1e-3)
    assert all(r["cost"] > 0 for r in _rows(workspace, "SELECT cost FROM calls WHERE cached=0"))


# ------------------------------------------------------------------ case 4: reply size

def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _watch(cmd, env, *, limit_mb: float = 1500, timeout: float = 240):
    """Run ``cmd``, sampling its RSS; killed (and reported) past ``limit_mb`` -- the code
    before the cap grew ~1 GB/s on an endless body."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    peak, killed = 0.0, False
    while proc.poll() is None and time.monotonic() - t0 < timeout:
        peak = max(peak, _rss_mb(proc.pid))
        if peak > limit_mb:
            proc.kill()
            killed = True
            break
        time.sleep(0.02)
    if proc.poll() is None:
        proc.kill()
        killed = True
    out, err = proc.communicate()
    return proc.returncode, out, err, peak, time.monotonic() - t0, killed


@pytest.mark.parametrize("hostile", ["endless", "50MB"])
def test_a_reply_over_the_cap_fails_fast_with_bounded_memory(workspace, data_dir, transport,
                                                             hostile):
    """Before: an endless body grew the client ~1 GB/s until --timeout (then retried); a
    50 MB reply was stored whole.  Now: a failed call within seconds, sent once, the client's
    memory within ~100 MB of a normal run's, and no reply stored."""
    base_args = ("--dataset", "games", "--model", PRICED, "--transport", transport,
                 "--data-dir", data_dir, "--limit", "1", "--timeout", "120")
    with StubServer() as srv:
        # a normal run first: the RSS a process of this command needs anyway
        code, out, err, normal_peak, _, _ = _watch(
            _cmd("recommend", *base_args, "--api-base", srv.base_url, "--db",
                 workspace.with_name("normal.sqlite")), _env())
        assert code == 0, err[-3000:]
        if hostile == "endless":
            srv.endless = True
        else:
            srv.reply_bytes = 50_000_000
        n0 = srv.n_requests
        code, out, err, peak, elapsed, killed = _watch(
            _cmd("recommend", *base_args, "--api-base", srv.base_url, "--db", workspace),
            _env())
        n_requests = srv.n_requests - n0
        sent = srv.bytes_sent
    print(f"{hostile}: peak RSS {peak:.0f} MB (a normal run: {normal_peak:.0f} MB), "
          f"{elapsed:.1f} s, {n_requests} requests, {sent} bytes sent")
    assert not killed, f"killed at {peak:.0f} MB after {elapsed:.1f} s"
    assert "Traceback" not in err, err[-3000:]
    assert peak < normal_peak + 100, (peak, normal_peak)
    assert elapsed < 60                       # far below --timeout 120 (and its retries)
    assert n_requests == 1                     # not retried
    if hostile == "endless":
        assert sent < 64 << 20                 # the client hung up soon after the cap
    calls = _rows(workspace, "SELECT * FROM calls")
    assert len(calls) == 1 and calls[0]["status"] == "failed"
    # the default cap (the option itself: test_max_reply_bytes_is_checked, test_llm_client)
    assert calls[0]["error"] == "ReplyTooLarge: reply larger than 4 MiB (--max-reply-bytes)"
    assert not calls[0]["response"] and calls[0]["attempts"] == 1
    assert (workspace.stat().st_size + _size(workspace, "-wal")) < (4 << 20)
    # the run's only call failed: nothing worked, so the run fails in one line (item 15)
    last = err.strip().splitlines()[-1]
    assert code == 1 and last.startswith("re2llm-tui: error: the only call failed (ReplyTooLarge")
    assert "Traceback" not in err and last.endswith("marked failed")


def _size(workspace, suffix):
    p = workspace.with_name(workspace.name + suffix)
    return p.stat().st_size if p.exists() else 0


def test_max_reply_bytes_is_checked(workspace, data_dir):
    done = subprocess.run(_cmd("recommend", "--dataset", "games", "--limit", "1", "--model",
                               "openai/x", "--api-base", "http://127.0.0.1:9/v1",
                               "--max-reply-bytes", "10", "--db", workspace,
                               "--data-dir", data_dir),
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--max-reply-bytes" in lines[0], done.stderr


# ------------------------------------------------------------------ case 5: content

def test_list_content_is_joined_and_object_content_is_a_failed_call(workspace, data_dir,
                                                                     transport):
    """Before (fast): "workspace: Error binding parameter 6", the run left ``running``.
    Now: text parts are joined (the ranking is read from them); an object is a failed call
    with its reason, stored alike on both transports; the run is not left running."""
    from re2llm_tui.data.release import load_sessions

    s = load_sessions("games", "test", data_dir)[0]
    with StubServer() as srv:
        srv.content = [{"type": "text", "text": f"1. {s.target}\n"},
                       {"type": "text", "text": "2. Something Else"}]
        ok = _recommend(workspace, data_dir, srv.base_url, transport, "--limit", "1",
                        "--json")
        srv.content = {"type": "text", "text": "an object"}
        bad = _recommend(workspace.with_name("bad.sqlite"), data_dir, srv.base_url, transport,
                         "--limit", "1", "--json")
        n_bad = srv.n_requests - 1
    for done in (ok, bad):
        _no_traceback(done)
    assert ok.returncode == 0, ok.stderr[-3000:]
    summary = json.loads(ok.stdout)
    assert summary["metrics"]["hr@1"] == 1.0
    row = _rows(workspace, "SELECT response FROM calls")[0]
    assert row["response"] == f"1. {s.target}\n2. Something Else"
    calls = _rows(workspace.with_name("bad.sqlite"), "SELECT * FROM calls")
    assert len(calls) == 1 and calls[0]["status"] == "failed" and calls[0]["attempts"] == 1
    assert calls[0]["error"] == "UnusableReply: the reply's content is an object, not text"
    assert n_bad == 1                                    # not retried
    runs = _rows(workspace.with_name("bad.sqlite"), "SELECT status FROM runs")
    assert runs and runs[0]["status"] != "running"


# ------------------------------------------------------------------ case 14: credentials

@pytest.mark.parametrize("with_key", [False, True], ids=["no-key", "env-key"])
def test_credentials_in_the_api_base_are_sent_as_basic_and_never_stored(
        workspace, data_dir, transport, with_key, tmp_path):
    """Before: every call failed locally ("Cannot combine AUTHORIZATION header with ...
    credentials encoded in URL"), 0 requests reached the server, the run ended ``done``.
    Now: the server gets ``Authorization: Basic`` from the URL (in place of any API key) and
    answers; the password is in no table, file or output."""
    password = "s3cr3t-PW-0192"
    env = _env(OPENAI_API_KEY="sk-env-key-XYZ") if with_key else _env()
    with StubServer() as srv:
        srv.basic_auth = ("alice", password)
        base = srv.base_url.replace("http://", f"http://alice:{password}@")
        done = _recommend(workspace, data_dir, base, transport, "--limit", "2", env=env)
        headers = list(srv.auth_headers)
        n_ok = srv.n_requests
    _no_traceback(done)
    assert done.returncode == 0, done.stderr[-3000:]
    assert n_ok == 2 and headers == ["Basic YWxpY2U6czNjcjN0LVBXLTAxOTI="] * 2
    calls = _rows(workspace, "SELECT status, api_base FROM calls")
    assert [c["status"] for c in calls] == ["ok", "ok"]
    assert {c["api_base"] for c in calls} == {srv.base_url}
    assert password not in done.stdout + done.stderr
    for path in tmp_path.iterdir():
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path
    con = sqlite3.connect(workspace)
    try:
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            for row in con.execute(f"SELECT * FROM [{table}]"):
                assert password not in repr(row), table
    finally:
        con.close()
