"""Reward outcomes computed by several worker processes (both cores for the local model).

:func:`fill_with_workers` shards the sessions of a to-do list over ``workers`` spawned
processes.  Each worker has its own LLM client (and, for the embedded model, its own model
instance on one thread), computes its sessions a session at a time -- so the local engine
reuses each session's prompt across its actions -- and commits every outcome to the one
workspace as it finishes (SQLite WAL: safe across processes).  The parent applies the
outcomes to its in-memory table as they arrive and reports progress.

``--max-calls`` / ``--max-cost`` hold across the workers (one
:class:`~re2llm_tui.llm.client.SharedBudget`); pause and stop of the calling process's
:class:`~re2llm_tui.control.Control` reach every worker within a second; a worker whose
parent is gone stops by itself.
"""

from __future__ import annotations

import queue as queue_mod
from dataclasses import dataclass
from typing import Callable

from re2llm_tui.client_procs import shard_by_key
from re2llm_tui.proc_pool import end_processes, raise_outcome, run_child, send_last, \
    shared_budget


@dataclass
class WorkerSpec:
    client_options: dict
    dataset: str
    sessions: list            # this worker's sessions
    index: list[int]          # their indices in the parent's table
    actions: list[tuple[int, str]]
    pairs: list[tuple[int, int]]   # (local session index, action), session-major
    budget: object            # SharedBudget
    rank_by: str = "reply"    # the parent table's rank accounting ...
    context_tag: str = ""     # ... and context tag: a worker stores exactly what it would
    samples: int = 1          # ... and samples per outcome


def shard(pairs: list[tuple[int, int]], workers: int,
          same: dict[int, str] | None = None) -> list[list[tuple[int, int]]]:
    """Split ``pairs`` by session over ``workers`` (a session's pairs stay together),
    balancing the number of pairs; each shard stays session-major.  Sessions with the same
    ``same[i]`` (their prompt: identical requests) go to the same worker, whose client
    sends such a request once."""
    by_session: dict[int, list[tuple[int, int]]] = {}
    for i, a in pairs:
        by_session.setdefault(i, []).append((i, a))
    sessions = sorted(by_session)
    # sessions in order, each group to the least-loaded shard: every shard starts at the front
    keys = [repr(same.get(i, i) if same else i) for i in sessions]
    parts = shard_by_key(keys, workers, [len(by_session[i]) for i in sessions])
    return [sorted(p for j in part for p in by_session[sessions[j]]) for part in parts]


def _worker_main(spec: WorkerSpec, q, stop, pause) -> None:
    send_last(q, ("end", *run_child(stop, pause, lambda: _compute(spec, q))))


def _compute(spec: WorkerSpec, q) -> None:
    """A worker's sessions: every outcome committed, then sent to the parent."""
    from re2llm_tui.llm.client import LLMClient
    from re2llm_tui.utilization.rewards import LLMRewards

    client = LLMClient(**spec.client_options, shared_budget=spec.budget)
    src = LLMRewards(client, spec.sessions, spec.actions, dataset=spec.dataset,
                     rank_by=spec.rank_by, context_tag=spec.context_tag,
                     samples=spec.samples)
    record = src.record

    def record_and_send(i: int, a: int, res) -> None:
        record(i, a, res)
        results = res if isinstance(res, list) else [res]
        ok = all(r.ok for r in results)
        # ("res", index, action, ok, hits, sent, failed, cost[, rank, ndcg, ranking, samples])
        msg = ["res", spec.index[i], a, ok, sum(1 for r in results if r.cached),
               sum(1 for r in results if not r.cached),
               sum(1 for r in results if not r.ok),
               sum(float(r.cost or 0.0) for r in results if not r.cached)]
        if ok:
            msg += [src.target_rank(i, a), float(src.ndcg[i, a]), src.ranking(i, a),
                    src._samples.get((i, a))]
        q.put(tuple(msg))

    src.record = record_and_send
    try:
        src.compute(spec.pairs)
    finally:
        src.close()
        client.close()


def fill_with_workers(source, pairs: list[tuple[int, int]], workers: int,
                      on_outcome: Callable[[int, int], None] | None = None) -> None:
    """Compute ``pairs`` of ``source`` (an :class:`~re2llm_tui.utilization.rewards.LLMRewards`) in
    ``workers`` processes; see the module docstring.  Raises what a worker's stop was
    (:class:`BudgetExceeded`, :class:`StopRequested`) or a one-line :class:`UserError`."""
    import multiprocessing

    from re2llm_tui.control import StopRequested
    from re2llm_tui.control import current as current_control

    client = source.client
    client.check()
    ctx = multiprocessing.get_context("spawn")
    budget = shared_budget(client, ctx)
    q = ctx.Queue()
    stop, pause = ctx.Event(), ctx.Event()
    options = client.options()
    procs = []
    same = {i: source.sessions[i].prompt for i, _ in pairs}
    for part in shard(pairs, workers, same):
        idx = sorted({i for i, _ in part})
        local = {g: n for n, g in enumerate(idx)}
        spec = WorkerSpec(options, source.dataset, [source.sessions[g] for g in idx], idx,
                          list(source.actions), [(local[i], a) for i, a in part], budget,
                          rank_by=source.rank_by, context_tag=source.context_tag,
                          samples=source.samples)
        p = ctx.Process(target=_worker_main, args=(spec, q, stop, pause),
                        name="re2llm-reward-worker", daemon=True)
        p.start()
        procs.append(p)
    control = current_control()
    ended, stop_reason, budget_reason, errors = 0, None, None, []
    try:
        while ended < len(procs):
            if control.stopped:
                stop_reason = control.reason
                break
            if control.paused:
                pause.set()
                try:
                    control.check()          # waits (and says "paused") until resumed
                except StopRequested as exc:
                    stop_reason = str(exc)
                    break
                finally:
                    pause.clear()
            try:
                msg = q.get(timeout=0.1)
            except queue_mod.Empty:
                if not any(p.is_alive() for p in procs) and q.empty():
                    # a worker died without saying so (killed): count it as ended
                    ended = len(procs)
                    codes = [p.exitcode for p in procs if p.exitcode]
                    sig = next((-c for c in codes if c < 0), None)
                    errors.append("a reward worker process exited unexpectedly"
                                  + (f" (signal {sig})" if sig else "")
                                  + "; finished outcomes are stored: rerun to resume")
                continue
            if msg[0] == "res":
                _, gi, a, ok, hits, sent, failed, cost = msg[:8]
                source.hits += hits
                source.calls += sent
                source.cost += cost
                source.failed += failed
                if not ok:
                    continue
                source.apply(gi, a, *msg[8:12])
                if on_outcome is not None:
                    on_outcome(gi, a)
            elif msg[0] == "end":
                ended += 1
                if msg[1] == "budget":
                    budget_reason = budget_reason or msg[2]
                elif msg[1] == "stopped":
                    stop_reason = stop_reason or msg[2]
                elif msg[1] == "error":
                    errors.append(msg[2])
    finally:
        if stop_reason or errors or ended < len(procs):
            stop.set()
        end_processes(procs)
        # outcomes that arrived while stopping are stored already; apply them too
        _drain(q, source)
        client.calls_started = budget.calls.value
    raise_outcome(errors, stop_reason, budget_reason)


def _drain(q, source) -> None:
    while True:
        try:
            msg = q.get_nowait()
        except (queue_mod.Empty, OSError, ValueError, EOFError):
            return
        if msg[0] == "res" and msg[3]:
            source.apply(msg[1], msg[2], *msg[8:12])
