"""PPO environment steps per second on a cached reward table (no LLM).

    python benchmarks/bench_ppo.py [--sessions 500] [--actions 21] [--dim 384]
                                   [--steps 64000] [--repeat 3] [--autograd-steps 3200]

Prints, for the release hyperparameters (batch 32, 10 epochs, minibatch 32, hidden 64):

(a) the whole PPO loop (rollout of 32 sessions, advantages, 10 epochs of clipped updates of
    actor and critic, periodic reports) in env steps/s -- target >= 20,000 on 2 cores -- by
    the wall clock and by the process's CPU time (what an otherwise idle core would give:
    other processes on the machine lower the wall-clock figure, not the CPU-time one);
(b) the vectorised rollout alone (policy forward, sampling, reward lookup) in env steps/s;
(c) the same PPO update written the textbook way (autograd + torch.optim.Adam +
    clip_grad_norm_, :func:`re2llm_tui.utilization.agent.ppo_loss.reference_update`, the
    spec of the hand-written :mod:`re2llm_tui.utilization.agent.numpy_update`) for comparison.

States are random unit vectors of ``--dim`` (the values do not change the arithmetic) and
rewards a random table.  Each figure is the best of ``--repeat`` runs; the 1-minute load
average is printed, since other processes on the two cores lower every figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET = 20_000


def problem(n: int, n_actions: int, dim: int):
    import numpy as np

    rng = np.random.default_rng(0)
    states = rng.normal(size=(n, dim)).astype(np.float32)
    states /= np.linalg.norm(states, axis=1, keepdims=True)
    table = (0.1 * rng.normal(size=(n, n_actions))).astype(np.float32)
    return states, table


def bench_loop(states, table, steps: int, repeat: int) -> tuple[float, float]:
    """(best wall-clock, best CPU-time) env steps/s of the whole PPO loop."""
    from re2llm_tui.utilization.agent import PPOConfig, PPOTrainer
    from re2llm_tui.utilization.rewards import RewardTable

    best_wall = best_cpu = 0.0
    for _ in range(repeat):
        cfg = PPOConfig(total_steps=steps, log_every=max(1024, steps // 16))
        trainer = PPOTrainer(states, RewardTable(table), cfg)
        t0, c0 = time.perf_counter(), time.process_time()
        out = trainer.train()
        best_wall = max(best_wall, out.step / (time.perf_counter() - t0))
        best_cpu = max(best_cpu, out.step / (time.process_time() - c0))
    return best_wall, best_cpu


def bench_rollout(states, table, batches: int, repeat: int) -> float:
    from re2llm_tui.utilization.agent import PPOConfig, PPOTrainer
    from re2llm_tui.utilization.agent.numpy_update import single_threaded
    from re2llm_tui.utilization.rewards import RewardTable

    trainer = PPOTrainer(states, RewardTable(table), PPOConfig())
    best = 0.0
    with single_threaded():
        for _ in range(repeat):
            t0 = time.perf_counter()
            for _ in range(batches):
                trainer._rollout()
            best = max(best, batches * trainer.cfg.batch_size / (time.perf_counter() - t0))
    return best


def bench_autograd(states, table, steps: int) -> float:
    import numpy as np
    import torch

    from re2llm_tui.utilization.agent import ActorCritic, PPOConfig
    from re2llm_tui.utilization.agent.ppo_loss import (
        make_reference_optimizers,
        reference_update,
    )

    cfg = PPOConfig(total_steps=steps)
    torch.set_num_threads(1)
    agent = ActorCritic(states.shape[1], table.shape[1], cfg.hidden, seed=1)
    opts = make_reference_optimizers(agent, cfg)
    x_all = torch.from_numpy(states)
    r_all = torch.from_numpy(table)
    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    done = 0
    update = 0
    while done < steps:
        idx = torch.from_numpy(rng.integers(0, len(states), cfg.batch_size))
        x = x_all[idx]
        with torch.no_grad():
            a, logp, _, v = agent.get_action_and_value(x)
        r = r_all[idx, a]
        reference_update(agent, opts, {"x": x, "actions": a, "logprobs": logp,
                                       "advantages": r - v, "returns": r}, cfg,
                         1.0 - update / cfg.num_updates)
        update += 1
        done += cfg.batch_size
    return done / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=500)
    ap.add_argument("--actions", type=int, default=21)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--steps", type=int, default=64_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--autograd-steps", type=int, default=3_200)
    args = ap.parse_args()

    states, table = problem(args.sessions, args.actions, args.dim)
    print(f"PPO on a cached reward table: {args.sessions} sessions x {args.actions} actions, "
          f"{args.dim}-d states; batch 32, 10 epochs, minibatch 32, hidden 64")
    print(f"cores: {os.cpu_count()}, load average (1 min) before: {os.getloadavg()[0]:.2f}")
    best, cpu = bench_loop(states, table, args.steps, args.repeat)
    print(f"(a) full PPO loop: {best:,.0f} env steps/s by the wall clock, {cpu:,.0f} per "
          "CPU-second")
    verdict = "meets" if best >= TARGET else "BELOW"
    print(f"    {verdict} the target of {TARGET:,} env steps/s (wall clock)")
    print(f"(b) rollout only (policy forward, sampling, reward lookup): "
          f"{bench_rollout(states, table, 500, args.repeat):,.0f} env steps/s")
    if args.autograd_steps:
        ag = bench_autograd(states, table, args.autograd_steps)
        print(f"(c) textbook autograd update (ppo_loss.reference_update), 1 thread: "
              f"{ag:,.0f} env steps/s ({best / ag:.1f}x slower than (a))")
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
