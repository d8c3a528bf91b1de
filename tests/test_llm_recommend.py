"""``recommend`` over real sessions with test doubles (scripted provider, loopback stub):
scoring and storing, the hint, cache on rerun, failures, budget stop and resume, and a run
killed mid-way (SIGKILL) then resumed with no finished call repeated."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stub_server import StubServer, messages_hash

from re2llm_tui.data.release import load_sessions
from re2llm_tui.evaluation.recommend import recommend
from re2llm_tui.llm.client import LLMClient
from re2llm_tui.llm.scripted import register_scripted

ROOT = Path(__file__).resolve().parent.parent


def _target_first(sessions, hit_ids):
    """Reply function: list the target first for sessions in ``hit_ids``, else 10 negatives."""
    by_prompt = {}
    for s in sessions:
        titles = [c for i, c in enumerate(s.candidates) if i != s.target_index][:10]
        if s.id in hit_ids:
            titles = [s.target] + titles[:9]
        by_prompt[s.prompt] = "\n".join(f"{i}. {t}" for i, t in enumerate(titles, 1))

    def reply(messages):
        content = messages[-1]["content"]
        for prompt, text in by_prompt.items():
            if content.startswith(prompt.rstrip()):
                return text
        return "I cannot help with that."

    return reply


def _db(path):
    con = sqlite3.connect(path)
    con.row_factory = sqlite3.Row
    return con


def test_recommend_scores_stores_and_reruns_from_cache(workspace, data_dir):
    sessions = load_sessions("games", "test", data_dir)[:6]
    hits = {sessions[0].id, sessions[3].id}
    log = register_scripted("scripted", _target_first(sessions, hits))
    with LLMClient(workspace, model="scripted/demo") as c:
        seen = []
        res = recommend(sessions, c, dataset="games", split="test", progress=seen.append)
    assert res.status == "done" and res.done == 6 and res.failed == 0 and res.calls == 6
    assert res.metrics["hr@10"] == pytest.approx(2 / 6)
    assert res.metrics["hr@1"] == pytest.approx(2 / 6)        # targets listed first
    assert res.ranks == {s.id: (1 if s.id in hits else None) for s in sessions}
    assert seen[-1].done == 6 and seen[-1].total == 6
    con = _db(workspace)
    run = dict(con.execute("SELECT * FROM runs WHERE id=?", [res.run_id]).fetchone())
    assert run["kind"] == "recommend" and run["model"] == "scripted/demo"
    assert run["prompt_version"] == "release-v1" and run["status"] == "done"
    assert json.loads(run["metrics"])["hr@10"] == pytest.approx(2 / 6)
    items = [dict(r) for r in con.execute("SELECT * FROM run_items WHERE run_id=? ORDER BY session_id",
                                          [res.run_id])]
    assert [i["session_id"] for i in items] == [s.id for s in sessions]
    assert items[0]["prompt"] == sessions[0].prompt and items[0]["reply"].startswith("1. ")
    assert len(json.loads(items[0]["ranking"])) == 10 and items[0]["call_id"]
    con.close()
    # the same command again: a new run, every call served from the cache
    with LLMClient(workspace, model="scripted/demo") as c:
        again = recommend(sessions, c, dataset="games", split="test")
    assert again.run_id != res.run_id and again.calls == 0 and again.cache_hits == 6
    assert again.metrics == res.metrics and len(log) == 6


def test_hint_is_appended_and_versioned(workspace, data_dir):
    sessions = load_sessions("movies", "test", data_dir)[:2]
    log = register_scripted("scripted", _target_first(sessions, set()))
    with LLMClient(workspace, model="scripted/demo") as c:
        res = recommend(sessions, c, dataset="movies", split="test",
                        hint="Prefer comedies.", hint_id=7)
    assert all(call["messages"][-1]["content"].endswith("Prefer comedies.") for call in log.calls)
    con = _db(workspace)
    run = dict(con.execute("SELECT * FROM runs WHERE id=?", [res.run_id]).fetchone())
    assert run["hint_id"] == 7 and run["hint_text"] == "Prefer comedies."
    assert "hint" in run["prompt_version"] and run["prompt_version"] != "release-v1"


def test_failures_and_garbage_are_misses_and_kept(workspace, data_dir):
    sessions = load_sessions("games", "test", data_dir)[:4]
    good = _target_first(sessions, {s.id for s in sessions})

    def reply(messages):
        content = messages[-1]["content"]
        if content.startswith(sessions[1].prompt.rstrip()):
            return "### total garbage ###"
        if content.startswith(sessions[2].prompt.rstrip()):
            raise RuntimeError("provider down")
        return good(messages)

    register_scripted("scripted", reply)
    with LLMClient(workspace, model="scripted/demo", max_retries=1, retry_base=0.001) as c:
        res = recommend(sessions, c, dataset="games", split="test")
    assert res.status == "done" and res.done == 4 and res.failed == 1
    assert res.metrics["hr@10"] == pytest.approx(2 / 4)
    con = _db(workspace)
    items = {r["session_id"]: dict(r) for r in
             con.execute("SELECT * FROM run_items WHERE run_id=?", [res.run_id])}
    assert items[sessions[1].id]["reply"] == "### total garbage ###"
    assert items[sessions[1].id]["target_rank"] is None and items[sessions[1].id]["error"] is None
    assert "provider down" in items[sessions[2].id]["error"]
    assert con.execute("SELECT n_failed FROM runs WHERE id=?", [res.run_id]).fetchone()[0] == 1


def test_budget_stop_then_resume_same_run(workspace, data_dir):
    sessions = load_sessions("games", "test", data_dir)[:5]
    log = register_scripted("scripted", _target_first(sessions, {sessions[0].id}))
    with LLMClient(workspace, model="scripted/demo", max_calls=2, concurrency=1) as c:
        first = recommend(sessions, c, dataset="games", split="test")
    assert first.status == "stopped" and "max-calls" in first.stopped_reason
    assert first.done == 2 and len(log) == 2
    with LLMClient(workspace, model="scripted/demo") as c:
        second = recommend(sessions, c, dataset="games", split="test")
    assert second.resumed and second.run_id == first.run_id
    assert second.status == "done" and second.done == 5 and second.calls == 3
    assert len(log) == 5                                  # nothing paid twice


def test_cli_recommend_with_stub_and_budget_exit(run_cli, workspace, data_dir):
    sessions = load_sessions("games", "test", data_dir)[:3]
    with StubServer(reply_fn=_target_first(sessions, {sessions[1].id})) as srv:
        code, out, err = run_cli("recommend", "--dataset", "games", "--limit", "3",
                                 "--model", "openai/stub-model", "--api-base", srv.base_url,
                                 "--max-calls", "1", "--db", workspace, "--data-dir", data_dir)
        assert code == 3 and "stopped" in err and "max-calls 1" in err
        code, out, err = run_cli("recommend", "--dataset", "games", "--limit", "3",
                                 "--model", "openai/stub-model", "--api-base", srv.base_url,
                                 "--db", workspace, "--data-dir", data_dir, "--json")
        assert code == 0, err
        summary = json.loads(out)
        assert summary["status"] == "done" and summary["done"] == 3
        assert summary["metrics"]["hr@10"] == pytest.approx(1 / 3)
        assert srv.n_requests == 3


def test_cli_prints_demo_notice_and_table(run_cli, workspace, data_dir):
    # --max-calls 0: the demo notice and a clean stop, without running the local model
    code, out, err = run_cli("recommend", "--dataset", "movies", "--limit", "2",
                             "--max-calls", "0", "--db", workspace, "--data-dir", data_dir)
    assert code == 3
    assert "135M" in err and "--model" in err and "--api-base" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("args, needle", [
    (["--model", "no-such-provider-xyz"], "unknown model string"),
    (["--model", "gpt-4o-mini"], "OPENAI_API_KEY"),
    (["--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1"], "unreachable"),
    (["--hint", "a", "--hint-id", "2"], "not both"),
])
def test_cli_bad_input_is_one_line_before_any_work(run_cli, workspace, data_dir, monkeypatch,
                                                   args, needle):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code, out, err = run_cli("recommend", "--dataset", "games", "--limit", "2", *args,
                             "--db", workspace, "--data-dir", data_dir)
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("re2llm-tui: error:") and needle in lines[0]
    if workspace.exists():
        con = _db(workspace)
        assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
        assert con.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 0


def test_run_killed_midway_resumes_without_repeating_a_call(workspace, data_dir):
    """SIGKILL a real `recommend` process mid-run, rerun it: finished calls are not resent."""
    sessions = load_sessions("games", "test", data_dir)[:12]
    with StubServer(latency=0.3, reply_fn=_target_first(sessions, {s.id for s in sessions[::2]})) \
            as srv:
        cmd = [sys.executable, "-c", "from re2llm_tui.cli import entry; entry()", "recommend",
               "--dataset", "games", "--limit", "12", "--model", "openai/stub-model",
               "--api-base", srv.base_url, "--concurrency", "2", "--db", str(workspace),
               "--data-dir", str(data_dir)]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        deadline = time.time() + 120
        n_ok = 0
        while time.time() < deadline and proc.poll() is None:
            if workspace.exists():
                try:
                    con = sqlite3.connect(workspace, timeout=5)
                    n_ok = con.execute("SELECT COUNT(*) FROM calls WHERE status='ok'").fetchone()[0]
                    con.close()
                except sqlite3.OperationalError:
                    n_ok = 0
            if n_ok >= 4:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        con = _db(workspace)
        finished = [json.loads(r["request"]) for r in
                    con.execute("SELECT request FROM calls WHERE status='ok' AND cached=0")]
        run = dict(con.execute("SELECT * FROM runs").fetchone())
        con.close()
        assert run["status"] == "running" and 4 <= len(finished) < 12
        before = dict(srv.requests)

        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=180)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        for req in finished:                 # no finished call was sent again
            h = messages_hash(req["messages"])
            assert srv.requests[h] == before[h] == 1
        assert sum(srv.requests.values()) <= 12 + 2   # at most the 2 in flight were resent
        con = _db(workspace)
        runs = [dict(r) for r in con.execute("SELECT * FROM runs")]
        assert len(runs) == 1 and runs[0]["status"] == "done"      # the same run, resumed
        assert con.execute("SELECT COUNT(*) FROM run_items WHERE run_id=?",
                           [runs[0]["id"]]).fetchone()[0] == 12
        assert json.loads(runs[0]["metrics"])["hr@10"] == pytest.approx(0.5)


def test_cli_hint_id_appends_the_kb_hint(run_cli, workspace, data_dir):
    from re2llm_tui.data.release import load_release_hints

    hint = load_release_hints("games", data_dir)[3]
    sessions = load_sessions("games", "test", data_dir)[:2]
    with StubServer(reply_fn=_target_first(sessions, set())) as srv:
        code, out, err = run_cli("recommend", "--dataset", "games", "--limit", "2",
                                 "--hint-id", "3", "--model", "openai/stub-model",
                                 "--api-base", srv.base_url, "--db", workspace,
                                 "--data-dir", data_dir, "--json")
        assert code == 0, err
        assert all(b["messages"][-1]["content"].endswith(hint) for b in srv.bodies)
        code, out, err = run_cli("recommend", "--dataset", "games", "--limit", "2",
                                 "--hint-id", "999", "--model", "openai/stub-model",
                                 "--api-base", srv.base_url, "--db", workspace,
                                 "--data-dir", data_dir)
        assert code == 2 and "999" in err and len(err.strip().splitlines()) == 1
        assert srv.n_requests == 2


def test_cli_hint_id_0_is_the_no_hint_entry(run_cli, workspace, data_dir):
    """Entry 0 of the KB is the agent's "no hint" action: ``--hint-id 0`` sends the plain
    prompt (the same request as no hint at all, so it is answered from the cache) and stores
    the run as hint 0 with no text."""
    sessions = load_sessions("games", "test", data_dir)[:2]
    with StubServer(reply_fn=_target_first(sessions, set())) as srv:
        base = ["recommend", "--dataset", "games", "--limit", "2", "--model",
                "openai/stub-model", "--api-base", srv.base_url, "--db", workspace,
                "--data-dir", data_dir, "--json"]
        code, out, err = run_cli(*base)
        assert code == 0, err
        plain = [b["messages"][-1]["content"] for b in srv.bodies]
        assert not any("Hint:" in p for p in plain)
        code, out, err = run_cli(*base, "--hint-id", "0")
        assert code == 0, err
        assert srv.n_requests == 2                 # the same prompts: all from the cache
    con = _db(workspace)
    rows = [dict(r) for r in con.execute("SELECT hint_id, hint_text, name FROM runs ORDER BY id")]
    assert [r["hint_id"] for r in rows] == [None, 0]
    assert rows[1]["hint_text"] is None and "hint" not in rows[1]["name"]
