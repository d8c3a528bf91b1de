"""``--client-procs N``: a stage's independent LLM calls made by N spawned client processes.

One client process tops out at the CPU its event loop has (measured: ~0.5 ms per call on the
fast path, ~3.8 ms through litellm); a fleet of servers behind ``--api-base`` answers faster
than that.  :func:`run_in_procs` shards work items over N processes, each with its own
:class:`~re2llm_tui.llm.client.LLMClient` (its own event loop and connections, rebuilt from
the parent client's :meth:`~re2llm_tui.llm.client.LLMClient.options`), all writing to the
one workspace (SQLite WAL; every finished call and outcome committed as it finishes).

* ``--max-calls`` / ``--max-cost`` hold across the processes: one
  :class:`~re2llm_tui.llm.budget.SharedBudget`, started from what the parent client spent;
  the parent takes the count back at the end.
* Identical requests are sent once: :func:`shard_by_key` puts the items whose requests are
  identical into the same process, where the client's in-flight table shares one call (and
  a later one is a cache hit).
* Pause and stop of the calling process reach every child within a second; a child whose
  parent is gone stops by itself; a child that dies (SIGKILL) loses only its calls in flight
  -- the others finish, the stage then fails with one line and a rerun resumes from the cache.
* Progress: each child sends one message per finished item; the caller's ``on_message``
  sums them (one progress bar).

The per-item work is ``worker(client, items, context, send)``, a module-level async function
(the child imports its module when it unpickles it), run on the child client's loop.
Reward tables use the same scheme in :mod:`re2llm_tui.utilization.reward_workers`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from re2llm_tui.runtime.pool import Pool

CLIENT_PROCS_ENV = "RE2LLM_CLIENT_PROCS"


#: the fewest processes :func:`max_procs` allows, however few cores the machine has
MIN_PROCS_CAP = 4


def max_procs() -> int:
    """The most client (or reward worker) processes a stage may start: one per core this
    process may run on, at least :data:`MIN_PROCS_CAP` (each process takes ~200 MB)."""
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(MIN_PROCS_CAP, cores)


def check_procs(n: int, option: str = "--client-procs") -> int:
    """``n`` processes for ``option``: >= 1 and at most :func:`max_procs` (one-line
    UserError)."""
    from re2llm_tui.errors import UserError

    if n < 1:
        raise UserError(f"{option} must be >= 1 (got {n})")
    cap = max_procs()
    if n > cap:
        raise UserError(f"{option} must be at most {cap} on this machine (one per core; each "
                        f"process takes ~200 MB) (got {n})")
    return n


def check_client_procs(n: int | None) -> int:
    """``--client-procs``, else ``$RE2LLM_CLIENT_PROCS``, else 1 (one-line UserError; at
    most :func:`max_procs`)."""
    import os

    from re2llm_tui.errors import UserError

    option = "--client-procs"
    if n is None:
        raw = os.environ.get(CLIENT_PROCS_ENV, "").strip()
        try:
            n = int(raw) if raw else 1
        except ValueError:
            raise UserError(f"${CLIENT_PROCS_ENV} must be a whole number (got {raw!r})") \
                from None
        option = f"${CLIENT_PROCS_ENV}" if raw else option
    if n < 1:
        raise UserError(f"--client-procs must be >= 1 (got {n})")
    return check_procs(n, option)


def shard_by_key(keys: Sequence[str], procs: int, weights: Sequence[int] | None = None
                 ) -> list[list[int]]:
    """Indices of ``keys`` split over ``procs`` shards: equal keys in one shard (identical
    requests meet in one process), loads balanced, each shard in the original order."""
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    shards: list[list[int]] = [[] for _ in range(max(1, procs))]
    loads = [0] * len(shards)
    for members in groups.values():            # first-seen order: every shard starts early
        w = loads.index(min(loads))
        shards[w].extend(members)
        loads[w] += sum(weights[i] for i in members) if weights else len(members)
    return [sorted(s) for s in shards if s]


def request_key(*parts: Any) -> str:
    """A short digest of what determines a request (for :func:`shard_by_key`)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(repr(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _client_work(payload, options: dict, budget, send) -> None:
    """In a pool process: a client of its own runs ``worker(client, items, context, send)``."""
    from re2llm_tui.llm.client import LLMClient

    worker, items, context = payload
    client = LLMClient(**options, shared_budget=budget)
    try:
        client.run_sync(worker(client, items, context, send))
    finally:
        client.close()


async def run_in_procs(client, shards: Sequence[list], worker: Callable, context: dict,
                       on_message: Callable[[Any], None]) -> None:
    """Run ``worker(client, items, context, send)`` in one spawned process per shard (see
    the module docstring); ``on_message`` gets what each ``send(msg)`` sent, in the
    caller's loop.  Raises what stopped a process (:class:`BudgetExceeded`,
    :class:`StopRequested`) or a one-line :class:`UserError` -- after every other process
    ended and every message was delivered."""
    payloads = [(worker, list(items), dict(context)) for items in shards if items]
    await Pool(client, payloads, _client_work, on_message, what="a client process",
               kept="calls", name="re2llm-client-proc").run()
