"""Key-to-screen latency of the reward-table view (500 sessions x 21 actions) in a real
terminal (tmux, 200x50), idle and while the agent trains.

Reuses bench_tui_latency.py's pane and timing (tmux ``send-keys`` until ``capture-pane``
shows a changed pane; ~2 ms polling plus ~3 ms per capture are included in the figures).
The fixture workspace (tests/tui_snapshot_app.py) gets a planted reward table of 500 train
sessions x (no hint + the 20 release hints) for the stub model and a finished training run
whose choices are marked (tests/test_tui_evidence.py's ``plant_rewards``); the app's
training run (stub LLM, prefilled, PPO at full speed in its spawned process) fills its own
smaller table meanwhile.  Keys: cursor moves in the table (Down/Right/Up/Left, and a
PageDown/PageUp pair every tenth key) at a user's pace.  Target: p95 < 50 ms while training.

    python benchmarks/bench_reward_table.py [--keys 80] [--sessions 50]

Measured on the 2-core dev machine shared with other jobs (``--keys 60``), p50 / p95 / max:
  a DataTable (cell cursor, 500 x 23 cells; load average 9.7): idle 20 / 141 / 392 ms,
    training 37 / 159 / 1685 ms; opening the view 712 ms (PageDown re-renders ~1000 cells)
  the line-API grid (widgets/reward_grid.py; load average 6.4): idle 19 / 37 / 41 ms,
    training 23 / 45 / 62 ms; opening the view 242 ms.  Target met.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_tui_latency import Pane, key_to_change, pct  # noqa: E402

KEYS = ("Down", "Right", "Down", "Right", "Up", "Left", "Down", "Right", "Up", "Left")


def measure(pane: Pane, n: int) -> list[float]:
    out = []
    for i in range(n):
        key = KEYS[i % len(KEYS)]
        if i % 10 == 9:
            key = "PageDown" if (i // 10) % 2 == 0 else "PageUp"
        out.append(key_to_change(pane, key))
        time.sleep(0.15)              # a user's pace
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keys", type=int, default=80)
    p.add_argument("--sessions", type=int, default=50, help="sessions the training run uses")
    args = p.parse_args()
    from test_tui_evidence import plant_rewards
    from tui_snapshot_app import build_workspace

    data_dir = os.environ.get("RE2LLM_DATA") or str(ROOT.parent / "shared" / "datasets" /
                                                     "re2llm-release")
    tmp = Path(tempfile.mkdtemp(prefix="bench-rt-"))
    build_workspace(tmp / "kb.sqlite", data_dir)
    plant_rewards(tmp / "kb.sqlite", data_dir, n_sessions=500, model="openai/stub")
    env = {**os.environ, "RE2LLM_DATA": data_dir, "TERM": "xterm-256color",
           "OPENAI_API_KEY": "sk-bench-not-a-real-key", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), env_path]) if (env_path := os.environ.get(
               "PYTHONPATH")) else str(ROOT)}
    stub = subprocess.Popen([sys.executable, str(ROOT / "tests" / "stub_server.py")],
                            stdout=subprocess.PIPE, text=True, env=env)
    port = stub.stdout.readline().strip().split()[-1]
    cli = (f"{shlex.quote(sys.executable)} -c 'from re2llm_tui.cli import entry; entry()' run "
           f"--dataset games --db kb.sqlite --model openai/stub --api-base "
           f"http://127.0.0.1:{port}/v1 --train-limit {args.sessions} --train-steps 100000000 "
           f"--train-prefill")
    pane = Pane(cli, tmp, env)
    try:
        pane.wait_for("› Sessions")
        time.sleep(2)
        pane.key("4")
        pane.wait_for("› Training")
        t0 = time.perf_counter()
        pane.key("t")
        pane.wait_for("500 sessions × 21 actions")
        build = time.perf_counter() - t0
        time.sleep(1)
        idle = measure(pane, args.keys)
        pane.key("Escape")
        pane.wait_for("› Training")
        pane.key("s")
        t1 = time.perf_counter()
        while "started a new run" not in (shown := pane.screen()):
            if "Start training with" in shown:     # the cost preflight: y starts
                pane.key("y")
                time.sleep(0.5)
            if time.perf_counter() - t1 > 300:
                raise SystemExit("training did not start:\n" + shown)
            time.sleep(0.2)
        t1 = time.perf_counter()
        while "steps/s —" in pane.screen() or "steps/s" not in pane.screen():
            if time.perf_counter() - t1 > 900:
                raise SystemExit("training did not report steps/s:\n" + pane.screen())
            time.sleep(0.5)
        status = next((ln for ln in pane.screen().splitlines() if "steps/s" in ln), "")
        pane.key("t")
        pane.wait_for("500 sessions × 21 actions")
        time.sleep(1)
        busy = measure(pane, args.keys)
        pane.key("Escape")
        pane.wait_for("› Training")
        time.sleep(1)
        status_after = next((ln for ln in pane.screen().splitlines() if "steps/s" in ln), "")
        pane.key("q")
        time.sleep(1)
    finally:
        pane.close()
        stub.terminate()
    print(f"terminal tmux 200x50; reward table 500 x 21; training on {args.sessions} sessions "
          f"(stub LLM, prefilled); {args.keys} keys per phase; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"opening the view (build 500 x 21): {build * 1000:.0f} ms")
    print(f"training status before: {status.strip()}")
    print(f"training status after:  {status_after.strip()}")
    for phase, xs in (("idle", idle), ("training", busy)):
        print(f"{phase:>9} cursor (n={len(xs):3d}): p50 {statistics.median(xs):6.1f} ms  "
              f"p95 {pct(xs, .95):6.1f} ms  max {max(xs):6.1f} ms")
    print("target p95 < 50 ms while training:", "MET" if pct(busy, .95) < 50 else "NOT MET")


if __name__ == "__main__":
    main()
