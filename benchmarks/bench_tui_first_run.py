"""A new user's first training run in the real app, on the embedded demo model, in tmux.

Starts ``re2llm-tui run --dataset D`` on a fresh workspace in a tmux pane, goes to the
Training screen, presses ``s`` and then Enter on the proposed run, and measures what a user
sees: seconds from ``s`` to the proposal, from Enter to the first reward-table figure
(``reward table <n>/<total>`` with n >= 1) and to the first complete row (the per-hint bar
chart has data), and minutes from ``s`` to the evaluation table on screen (the proposed run
trains, then evaluates).  Targets: first figure <= 60 s, finished run <= 15 min.

    python benchmarks/bench_tui_first_run.py [--dataset games] [--timeout-min 25]

The pane's last screen is written to ``first_run_screen.txt`` next to the workspace.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_tui_latency import Pane  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="games")
    ap.add_argument("--timeout-min", type=float, default=25.0)
    ap.add_argument("--keep", action="store_true", help="keep the workspace folder")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="re2llm-first-run-"))
    exe = Path(sys.executable).with_name("re2llm-tui")
    env = dict(os.environ)
    cmd = f"{shlex.quote(str(exe))} run --dataset {shlex.quote(args.dataset)} --db kb.sqlite"
    pane = Pane(cmd, work, env, size=(120, 36))
    try:
        pane.wait_for("Sessions", timeout=60)
        pane.key("4")
        pane.wait_for("state idle", timeout=20)
        t_s = time.perf_counter()
        pane.key("s")
        pane.wait_for("Proposed run", timeout=60)
        t_prop = time.perf_counter() - t_s
        plan = pane.screen()
        pane.key("Enter")
        t_enter = time.perf_counter()
        first = row = None
        deadline = t_s + args.timeout_min * 60
        done = None
        while time.perf_counter() < deadline:
            screen = pane.screen()
            m = re.search(r"reward table (\d+)/(\d+)", screen)
            if first is None and m and int(m.group(1)) >= 1:
                first = time.perf_counter() - t_enter
            if row is None and re.search(r"rows [1-9]\d*/", screen):
                row = time.perf_counter() - t_enter
            if "agent (argmax)" in screen and "no hint" in screen and "NDCG" in screen:
                done = time.perf_counter() - t_s
                break
            time.sleep(1.0)
        final = pane.screen()
        (work / "first_run_screen.txt").write_text(final)
        print(f"dataset {args.dataset}; workspace {work}")
        for line in plan.splitlines():
            if "reward table:" in line or "evaluation:" in line or "in all" in line:
                print("  plan:", line.strip(" █│"))
        print(f"s -> proposal shown:            {t_prop:6.1f} s")
        print(f"Enter -> first table figure:     {first:6.1f} s" if first is not None
              else "Enter -> first table figure:     not seen")
        print(f"Enter -> first complete row:     {row:6.1f} s" if row is not None
              else "Enter -> first complete row:     not seen")
        print(f"s -> evaluation table on screen: {done / 60:6.1f} min" if done is not None
              else f"s -> evaluation table: not within {args.timeout_min} min")
        return 0 if done is not None else 1
    finally:
        try:
            pane.key("q")
            time.sleep(3)
            pane.tmux("kill-server")
        except Exception:  # noqa: BLE001 - already gone
            pass
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
