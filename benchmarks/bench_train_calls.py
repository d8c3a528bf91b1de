"""LLM calls paid by a full training run, and by its rerun.

    python benchmarks/bench_train_calls.py [--steps 500000] [--sessions 500] [--prefill]

Trains the agent on the games training sessions (500 by default) with the release KB
(21 actions) for ``--steps`` PPO steps (5e5 by default), the rewards coming from a scripted
LLM (a litellm custom provider: a test double with a fixed, pseudo-random target rank for
each (session, hint), so that hints help some sessions and hurt others), in a fresh
temporary workspace.  Then trains again from scratch (``--fresh``) on the same workspace.

Prints the calls of each run against the bound sessions x actions (target: the first run
<= sessions x actions, the rerun 0), the reward-table coverage, the wall time and the final
rewards.  Needs the release data and the MiniLM package (states are real embeddings).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pseudo_rank(session_id: str, hint: str) -> int | None:
    """A fixed rank in 1..10, or None (absent), per (session, hint text)."""
    h = int(hashlib.sha256(f"{session_id}|{hint}".encode()).hexdigest()[:8], 16)
    r = h % 16 + 1
    return r if r <= 10 else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500_000)
    ap.add_argument("--sessions", type=int, default=500)
    ap.add_argument("--prefill", action="store_true", help="fill the reward table up front")
    ap.add_argument("--workspace", help="workspace file (default: a temporary one)")
    args = ap.parse_args()

    from test_rewards import scripted_effects

    from re2llm_tui.data.release import load_sessions
    from re2llm_tui.llm.scripted import register_scripted
    from re2llm_tui.utilization.training import TrainSpec, train

    sessions = load_sessions("games", "train")[:args.sessions]
    log = register_scripted("scripted",
                            scripted_effects(sessions, lambda s, h: pseudo_rank(s.id, h)))
    tmp = tempfile.TemporaryDirectory()
    ws = args.workspace or str(Path(tmp.name) / "kb.sqlite")
    print(f"training {args.steps:,} PPO steps on {len(sessions)} games sessions, scripted LLM, "
          f"prefill={args.prefill}, workspace {ws}")
    rows = []
    for label, fresh in (("first run", False), ("rerun (--fresh)", True)):
        before = len(log)
        t0 = time.perf_counter()
        s = train(TrainSpec(dataset="games", model="scripted/bench", steps=args.steps,
                            prefill=args.prefill, db_path=ws, limit=args.sessions,
                            resume=not fresh, log_every=16_384))
        wall = time.perf_counter() - t0
        calls = len(log) - before
        bound = s.n_sessions * len(s.hint_ids)
        rows.append((label, calls, bound))
        print(f"{label}: {calls:,} LLM calls (bound sessions x actions = {bound:,}; "
              f"client reported {s.llm_calls:,}); reward table {s.table_known:,}/{s.table_size:,}; "
              f"{wall:.0f} s; last reward {s.scalars.get('charts/reward_mean', 0):+.4f}, "
              f"greedy {s.scalars.get('charts/eval_reward', 0):+.4f}")
    first, rerun = rows[0][1], rows[1][1]
    ok = first <= rows[0][2] and rerun == 0
    print(f"target (first <= {rows[0][2]:,}, rerun 0): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
