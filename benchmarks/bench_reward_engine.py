"""The reward-table engine: outcomes per second from scratch, with prefix reuse, and in workers.

    python benchmarks/bench_reward_engine.py --dataset games|movies --sessions N --actions K
                                             [--workers W] [--split train] [--method sequential]

An *outcome* is one ranking of one (session, action) pair; action 0 is "no hint" (the
session prompt alone), actions 1..K-1 append the release hints 1..K-1.  Computed three ways
in one run, on the same first ``N`` sessions of the split, straight on the engine
(``local.get_model(...).rank(prompt, candidates, 10, method)``; no workspace is touched):

* **scratch**: a model built with ``reuse=False``, every call decodes its prompt from token 0;
* **reuse**: one model keeping its live KV cache, the K actions of a session back to back
  (session-major), so each hinted prompt decodes only its last ~30 tokens;
* **workers**: as *reuse*, in ``W`` processes (multiprocessing spawn, one model each, one
  thread each), sessions handed out one at a time; timed from when every worker is ready.

Scratch and reuse alternate session by session so that a change of machine load hits both.
Prints the seconds per outcome of each way, then exactly::

    speedup reuse X.XXx        (reuse outcomes/s over scratch outcomes/s)
    speedup workers X.XXx      (W workers over the single reusing process)
    identical N/N              (reuse rankings equal to the scratch rankings)

and an estimate of the full reward table (500 sessions x 21 actions) on this dataset, from
the measured seconds of a session's first action and of its hinted actions.  Other users'
load on the CPU changes every figure: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FULL_SESSIONS, FULL_ACTIONS = 500, 21


def _load(dataset: str, split: str, n: int, k: int):
    """``[(session id, candidates, [prompt of action 0..k-1])]`` for the first n sessions."""
    from re2llm_tui.data.release import load_release_hints, load_sessions
    from re2llm_tui.prompts import recommend_prompt

    hints = load_release_hints(dataset)
    if k > len(hints):
        raise SystemExit(f"--actions {k}: the release has {len(hints)} actions")
    rows = []
    for s in load_sessions(dataset, split)[:n]:
        prompts = [recommend_prompt(s.prompt, hints[a] if a else None) for a in range(k)]
        rows.append((s.id, list(s.candidates), prompts))
    return rows


def _rank_session(lm, candidates, prompts, method: str):
    """Rank every action of one session back to back: [(ranking, seconds, cached tokens)]."""
    out = []
    for prompt in prompts:
        t0 = time.perf_counter()
        r = lm.rank(prompt, candidates, 10, method)
        out.append((r.ranking, time.perf_counter() - t0, r.cached_tokens))
    return out


# --------------------------------------------------------------------------- worker side
_worker_model = None


def _worker_init() -> None:
    """Load this process's own model (one thread) and warm it up."""
    global _worker_model
    from re2llm_tui.llm import local

    _worker_model = local.get_model()
    _worker_model.chat_output([{"role": "user", "content": "hi"}], max_tokens=2)


def _worker_ready(_=None) -> int:
    return os.getpid()


def _worker_session(task):
    sid, candidates, prompts, method = task
    return sid, _rank_session(_worker_model, candidates, prompts, method)


def _run_workers(rows, workers: int, method: str):
    """Rank the sessions in ``workers`` spawned processes; (results by session, wall seconds)."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_worker_init) as pool:
        # every worker has loaded its model once it answers (init runs before any task)
        pids = set()
        while len(pids) < workers:
            pids.update(pool.map(_worker_ready, range(workers * 4), chunksize=1))
        t0 = time.perf_counter()
        tasks = [(sid, cands, prompts, method) for sid, cands, prompts in rows]
        results = dict(pool.imap_unordered(_worker_session, tasks, chunksize=1))
        return results, time.perf_counter() - t0


# --------------------------------------------------------------------------- report
def _load_avg() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _per_session_seconds(results) -> tuple[float, float]:
    """Mean seconds of a session's first action, and of its other actions."""
    first = [res[0][1] for res in results.values()]
    rest = [t for res in results.values() for _, t, _ in res[1:]]
    return sum(first) / len(first), (sum(rest) / len(rest) if rest else 0.0)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="movies", choices=["games", "movies"])
    ap.add_argument("--sessions", type=int, default=3)
    ap.add_argument("--actions", type=int, default=FULL_ACTIONS)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--split", default="train")
    ap.add_argument("--method", default="sequential")
    args = ap.parse_args(argv)

    from re2llm_tui.llm import local

    rows = _load(args.dataset, args.split, args.sessions, args.actions)
    n_out = len(rows) * args.actions
    print(f"{args.dataset}/{args.split}: {len(rows)} sessions x {args.actions} actions = "
          f"{n_out} outcomes, method {args.method}, {args.workers} workers; {_load_avg()}",
          flush=True)
    scratch_lm = local.LocalModel(reuse=False)
    reuse_lm = local.get_model()
    for lm in (scratch_lm, reuse_lm):       # warm-up, not timed
        lm.chat_output([{"role": "user", "content": "hi"}], max_tokens=2)
        lm.forget()

    scratch, reuse = {}, {}
    t_scratch = t_reuse = 0.0
    for sid, cands, prompts in rows:
        t0 = time.perf_counter()
        scratch[sid] = _rank_session(scratch_lm, cands, prompts, args.method)
        t1 = time.perf_counter()
        reuse[sid] = _rank_session(reuse_lm, cands, prompts, args.method)
        t2 = time.perf_counter()
        t_scratch += t1 - t0
        t_reuse += t2 - t1
        print(f"  {sid}: scratch {(t1 - t0) / len(prompts):.2f} s/outcome, "
              f"reuse {(t2 - t1) / len(prompts):.2f} s/outcome", flush=True)
    print(f"workers phase: {_load_avg()}", flush=True)
    workers, t_workers = _run_workers(rows, args.workers, args.method)

    same = sum(r[0] == s[0] for sid in scratch for r, s in zip(reuse[sid], scratch[sid]))
    same_w = sum(r[0] == s[0] for sid in scratch for r, s in zip(workers[sid], scratch[sid]))
    sec = {"scratch": t_scratch / n_out, "reuse": t_reuse / n_out, "workers": t_workers / n_out}
    print(f"seconds per outcome: scratch {sec['scratch']:.3f}, reuse {sec['reuse']:.3f}, "
          f"{args.workers} workers {sec['workers']:.3f} (wall); {_load_avg()}")
    print(f"outcomes per second: scratch {1 / sec['scratch']:.3f}, reuse {1 / sec['reuse']:.3f}, "
          f"{args.workers} workers {1 / sec['workers']:.3f}")
    print(f"speedup reuse {sec['scratch'] / sec['reuse']:.2f}x")
    print(f"speedup workers {sec['reuse'] / sec['workers']:.2f}x")
    print(f"identical {same}/{n_out}")
    print(f"identical workers {same_w}/{n_out}")

    first, hinted = _per_session_seconds(reuse)
    session_s = first + (FULL_ACTIONS - 1) * hinted
    scratch_full = FULL_SESSIONS * FULL_ACTIONS * sec["scratch"]
    reuse_full = FULL_SESSIONS * session_s
    workers_full = reuse_full * sec["workers"] / sec["reuse"]
    print(f"reuse: a session's first action {first:.2f} s, each other action {hinted:.2f} s")
    print(f"full table {FULL_SESSIONS} sessions x {FULL_ACTIONS} actions ({args.dataset}): "
          f"scratch {_hours(scratch_full)}, reuse {_hours(reuse_full)}, "
          f"reuse + {args.workers} workers {_hours(workers_full)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
