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

from dataclasses import dataclass
from typing import Callable

from re2llm_tui.runtime.client_procs import shard_by_key
from re2llm_tui.runtime.pool import Pool


@dataclass
class WorkerSpec:
    dataset: str
    sessions: list            # this worker's sessions
    index: list[int]          # their indices in the parent's table
    actions: list[tuple[int, str]]
    pairs: list[tuple[int, int]]   # (local session index, action), session-major
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


def fill_with_workers(source, pairs: list[tuple[int, int]], workers: int, work: Callable,
                      on_outcome: Callable[[int, int], None] | None = None) -> None:
    """Compute ``pairs`` of ``source`` (an :class:`~re2llm_tui.utilization.rewards.LLMRewards`) in
    ``workers`` processes of one :class:`~re2llm_tui.runtime.pool.Pool`, each running
    ``work(spec, client_options, budget, send)`` on its :class:`WorkerSpec` (a module-level
    function: :func:`~re2llm_tui.utilization.rewards.compute_shard`); see the module
    docstring.  Raises what a worker's stop was (:class:`BudgetExceeded`,
    :class:`StopRequested`) or a one-line :class:`UserError`."""
    specs = []
    same = {i: source.sessions[i].prompt for i, _ in pairs}
    for part in shard(pairs, workers, same):
        idx = sorted({i for i, _ in part})
        local = {g: n for n, g in enumerate(idx)}
        specs.append(WorkerSpec(source.dataset, [source.sessions[g] for g in idx], idx,
                                list(source.actions), [(local[i], a) for i, a in part],
                                rank_by=source.rank_by, context_tag=source.context_tag,
                                samples=source.samples))

    def on_message(msg) -> None:
        _, gi, a, ok, hits, sent, failed, cost = msg[:8]
        source.hits += hits
        source.calls += sent
        source.cost += cost
        source.failed += failed
        if not ok:
            return
        trank, ndcg, ranking, samples = msg[8:12]
        source.apply(gi, a, trank, ndcg, ranking, samples)
        if on_outcome is not None:
            on_outcome(gi, a)

    Pool(source.client, specs, work, on_message, what="a reward worker process",
         kept="outcomes", name="re2llm-reward-worker").run_blocking()
