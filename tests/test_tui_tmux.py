"""Smoke test of the real app in a real terminal (tmux), as a user runs it.

Catches what headless tests cannot: the terminal driver, the `run` command's start-up, and
starting the training process from inside the running app (``bad value(s) in fds_to_keep``
when the resource tracker is not started before Textual).  Skips when tmux is absent.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid

import pytest
from tui_snapshot_app import build_workspace

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux not installed (apt-get install -y tmux): the real-"
                                       "terminal smoke test of the TUI needs it")


class Tmux:
    """One tmux server on a private socket, so nothing else's sessions are touched."""

    def __init__(self, cols: int, rows: int, command: str, cwd, env: dict) -> None:
        self.socket = f"re2llm-test-{uuid.uuid4().hex[:8]}"
        self.env = env
        self._tmux("new-session", "-d", "-s", "app", "-x", str(cols), "-y", str(rows),
                   "-c", str(cwd), command)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, env=self.env,
                              capture_output=True, text=True, timeout=20).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-t", "app", "-p")

    def keys(self, *keys: str) -> None:
        for k in keys:
            self._tmux("send-keys", "-t", "app", k)
            time.sleep(0.3)

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.3)
        raise AssertionError(f"{text!r} not on screen after {timeout}s:\n{screen}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], env=self.env,
                       capture_output=True, timeout=20)


@pytest.mark.parametrize("size,train", [((100, 30), True), ((200, 50), False)])
def test_app_in_tmux(tmp_path, data_dir, size, train):
    build_workspace(tmp_path / "kb.sqlite", data_dir)
    env = {**os.environ, "RE2LLM_DATA": str(data_dir), "TERM": "xterm-256color"}
    cli = (f"{shlex.quote(sys.executable)} -c 'from re2llm_tui.cli import entry; entry()' "
           f"run --dataset games --db kb.sqlite --data-dir {shlex.quote(str(data_dir))} "
           "--train-limit 4 --train-steps 64")
    marker = tmp_path / "exit.txt"
    tmux = Tmux(*size, f"{cli}; echo $? > {shlex.quote(str(marker))}; sleep 30", tmp_path, env)
    try:
        screen = tmux.wait_for("DEMO 135M")
        assert "games/train" in screen and "kb.sqlite" in screen
        assert "train-0000" in screen                  # the sessions table
        tmux.keys("2")
        tmux.wait_for("candidate hint(s) awaiting")
        tmux.keys("3")
        tmux.wait_for("accepted")
        tmux.keys("5")
        tmux.wait_for("No evaluation yet")
        tmux.keys("4")
        tmux.wait_for("state idle")
        if train:
            tmux.keys("s")                             # start training from the running app
            tmux.wait_for("started a new run")
            time.sleep(2)
            screen = tmux.screen()
            assert "fds_to_keep" not in screen and "training failed" not in screen, screen
        tmux.keys("?")
        tmux.wait_for("Hint review")                   # the help lists the keys
        tmux.keys("Escape", "1", "q")                  # quit mid-training: stops it first
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and not (
                marker.exists() and marker.read_text().strip()):
            time.sleep(0.3)
        assert marker.exists(), tmux.screen()
        assert marker.read_text().strip() == "0", (marker.read_text(), tmux.screen())
    finally:
        tmux.close()
