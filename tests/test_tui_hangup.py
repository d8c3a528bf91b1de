"""Closing the terminal of a workbench that runs a job ends the app and the job.

Real processes in a real terminal (tmux on a private socket): the workbench starts a training
job (a spawned process running the demo model), then the terminal goes away
(``tmux kill-session``: the pane's pty is closed and its processes get SIGHUP) or the app gets
SIGTERM.  Within 10 s no process of the app or of its jobs may be left.  Before the fix the
app hung for ever once the terminal had closed: Textual's output thread died on the
``EIO`` of the closed terminal and the main thread blocked on its full queue, ignoring
SIGTERM and SIGINT (only SIGKILL ended it).
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time

import pytest
from conftest import cmdline
from test_tui_tmux import Tmux, pytestmark  # noqa: F401 - skips without tmux
from tui_snapshot_app import build_workspace

GONE_WITHIN_S = 10.0


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone: it runs nothing)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b") ", 1)[-1][:1] != b"Z"
    except OSError:
        return False


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                ppid = int(fh.read().rsplit(b") ", 1)[-1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def _start_training(tmp_path, data_dir):
    build_workspace(tmp_path / "kb.sqlite", data_dir)
    env = {**os.environ, "RE2LLM_DATA": str(data_dir), "TERM": "xterm-256color"}
    cli = (f"exec {shlex.quote(sys.executable)} -c 'from re2llm_tui.cli import entry; entry()' "
           f"run --dataset games --db kb.sqlite --data-dir {shlex.quote(str(data_dir))} "
           "--train-limit 4 --train-steps 64")
    tmux = Tmux(100, 30, cli, tmp_path, env)
    app_pid = int(tmux._tmux("display-message", "-p", "-t", "app", "#{pane_pid}").strip())
    tmux.wait_for("DEMO 135M", timeout=90)
    tmux.keys("4")
    tmux.wait_for("state idle", timeout=60)
    tmux.keys("s")
    tmux.wait_for("started a new run", timeout=60)
    # the training process runs (and has drawn progress for a while)
    deadline = time.monotonic() + 60
    jobs: set[int] = set()
    while time.monotonic() < deadline:
        jobs = {p for p in _descendants(app_pid) if b"spawn_main" in cmdline(p)}
        if jobs:
            break
        time.sleep(0.3)
    assert jobs, "the training process did not start"
    time.sleep(3)
    assert _alive(app_pid)
    return tmux, app_pid, {app_pid} | _descendants(app_pid)


def _wait_gone(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    left = {p for p in pids if _alive(p)}
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = {p for p in left if _alive(p)}
    return left


def _kill(pids) -> None:
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass


def test_closing_the_terminal_ends_the_app_and_its_training_job(tmp_path, data_dir):
    tmux, app_pid, pids = _start_training(tmp_path, data_dir)
    left: set[int] = pids
    try:
        tmux._tmux("kill-session", "-t", "app")     # the terminal closes
        t0 = time.monotonic()
        left = _wait_gone(pids, GONE_WITHIN_S)
        assert not left, (f"still running {time.monotonic() - t0:.1f}s after the terminal "
                          f"closed: {sorted(left)} of {sorted(pids)}")
    finally:
        _kill(left)
        tmux.close()


def test_sigterm_ends_the_app_and_its_training_job(tmp_path, data_dir):
    tmux, app_pid, pids = _start_training(tmp_path, data_dir)
    left: set[int] = pids
    try:
        os.kill(app_pid, signal.SIGTERM)
        left = _wait_gone(pids, GONE_WITHIN_S)
        assert not left, f"still running after SIGTERM: {sorted(left)} of {sorted(pids)}"
    finally:
        _kill(left)
        tmux.close()
