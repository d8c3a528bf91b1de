"""Every wait of the LLM client wakes on stop: a ``Retry-After`` (or a backoff, or a queue for
a concurrency slot) is never waited out by a stopped job, and an absurd ``Retry-After``
fails the call with the reason instead of hanging; a ``--client-procs`` parent stopped
while its client processes still start ends them at once.

Real processes: the CLI in a subprocess against a loopback stub server that answers every
request 429 with a long ``Retry-After``.  Before: SIGTERM took 53 s and Ctrl+C 26.6 s
(the client slept the ``Retry-After``, capped at 60 s, before it looked at the stop).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import cmdline
from stub_server import StubServer

from re2llm_tui.control import Control, StopRequested
from re2llm_tui.llm.concurrency import LoopSemaphores

#: a stop must answer within this (2 s asked, x1.5 for a busy machine: the CLI must also
#: close its workspace and print its line)
STOP_WITHIN_S = 3.0


def _cli(*args, env=None):
    full_env = {**os.environ, "OPENAI_API_KEY": "sk-test", **(env or {})}
    return subprocess.Popen([sys.executable, "-c", "from re2llm_tui.cli import entry; entry()",
                             *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=full_env)


def _wait_requests(server: StubServer, n: int, proc, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(server.requests.values()) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} requests reached the server in {timeout}s")


def _recommend(db, data_dir, server, *extra, limit: int = 6):
    return _cli("recommend", "--dataset", "games", "--split", "test", "--limit", limit,
                "--model", "openai/stub-model", "--api-base", server.base_url,
                "--db", db, "--data-dir", data_dir, *extra)


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b") ", 1)[-1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != b"Z":
                out.append(int(entry))
    return out


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b") ", 1)[-1][:1] == b"Z"
    except OSError:
        return True


@pytest.mark.parametrize("procs", [1, 2])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_during_a_long_retry_after_answers_at_once(tmp_path, data_dir, sig, procs):
    with StubServer() as server:
        server.always_429 = "50"           # under the cap: the client would wait 50 s
        extra = ("--client-procs", "2") if procs > 1 else ()
        proc = _recommend(tmp_path / "kb.sqlite", data_dir, server, *extra)
        try:
            _wait_requests(server, procs, proc)  # each client process got its first 429
            time.sleep(0.3)                      # ... and sleeps its Retry-After
            kids = _children(proc.pid)
            t0 = time.monotonic()
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=60)
            took = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 130, err
    assert took < STOP_WITHIN_S, (took, err)
    assert "Traceback" not in err and "Task was destroyed" not in err, err
    lines = [ln for ln in err.splitlines() if "stopped" in ln]
    assert len(lines) == 1, err
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(_gone(k) for k in kids):
        time.sleep(0.05)
    assert all(_gone(k) for k in kids), kids


def test_an_absurd_retry_after_fails_the_call_with_the_reason(tmp_path, data_dir):
    db = tmp_path / "kb.sqlite"
    with StubServer() as server:
        server.always_429 = "999999"
        proc = _recommend(db, data_dir, server, "--concurrency", "2")
        try:
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        # one request per session: a call waiting 999999 s is not retried, it fails
        assert sum(server.requests.values()) == 6, server.requests
    assert "Traceback" not in err, err
    conn = sqlite3.connect(str(db))
    try:
        errors = [e for e, in conn.execute("SELECT error FROM calls WHERE cached=0")]
    finally:
        conn.close()
    assert len(errors) == 6 and all("Retry-After" in (e or "") and "999,999" in e
                                    for e in errors), errors


# --------------------------------------------------------------------------- in process

def test_control_sleep_wakes_on_stop_and_holds_its_clock_while_paused():
    control = Control()
    threading.Timer(0.2, control.request_stop).start()
    t0 = time.monotonic()
    with pytest.raises(StopRequested):
        asyncio.run(control.asleep(30))
    assert time.monotonic() - t0 < 2.0
    with pytest.raises(StopRequested):
        control.sleep(1)                       # already stopped: at once

    control = Control()
    control.pause.set()
    threading.Timer(0.6, control.pause.clear).start()
    t0 = time.monotonic()
    asyncio.run(control.asleep(0.2))
    assert time.monotonic() - t0 >= 0.6        # the pause held the clock
    t0 = time.monotonic()
    control.sleep(0.1)
    assert time.monotonic() - t0 < 2.0


def test_a_call_queued_for_a_concurrency_slot_wakes_on_stop(monkeypatch):
    from re2llm_tui import control as control_mod

    control = Control()
    monkeypatch.setattr(control_mod, "_current", control)
    sems = LoopSemaphores(1)

    async def main():
        async with sems.get():                 # the only slot, held by a call
            waiter = asyncio.create_task(_queued(sems))
            await asyncio.sleep(0.1)
            control.request_stop()
            t0 = time.monotonic()
            with pytest.raises(StopRequested):
                await waiter
            took = time.monotonic() - t0
        # the slot is free again and nothing is left pending on the loop
        assert not sems.semaphore().locked()
        await asyncio.sleep(0.2)
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return took, others

    took, others = asyncio.run(main())
    assert took < 1.0 and not others


async def _queued(sems):
    async with sems.get():
        raise AssertionError("a stopped job got a slot")


def test_sigterm_while_client_procs_start_ends_them_at_once(tmp_path, data_dir):
    """#12: the parent used to wait for each child's first report (its imports: 5-10 s on a
    busy machine) before it ended."""
    with StubServer(latency=0.05) as server:
        proc = _recommend(tmp_path / "kb.sqlite", data_dir, server, "--client-procs", "2",
                          limit=40)
        try:
            # the children are spawned (not yet reporting): SIGTERM the parent then
            deadline = time.monotonic() + 120
            kids: list[int] = []
            while time.monotonic() < deadline and len(
                    [k for k in kids if b"spawn_main" in cmdline(k)]) < 2:
                kids = _children(proc.pid)
                time.sleep(0.02)
            assert sum(server.requests.values()) == 0   # still starting
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
            took = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and not all(_gone(k) for k in kids):
        time.sleep(0.05)
    assert proc.returncode == 130, err
    assert took < STOP_WITHIN_S, (took, err)
    assert all(_gone(k) for k in kids), kids
    assert "Traceback" not in err, err
