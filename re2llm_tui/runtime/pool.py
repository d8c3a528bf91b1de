"""What the two pools of spawned LLM-client processes share.

:func:`re2llm_tui.runtime.client_procs.run_in_procs` (``--client-procs``: any stage's independent
calls) and :func:`re2llm_tui.utilization.reward_workers.fill_with_workers` (reward tables)
run the same way: one :class:`~re2llm_tui.llm.budget.SharedBudget` across the processes,
a child that installs the stop/pause events as its control and reports how it ended as
one ``(status, reason)``, a parent that ends its children within a grace period and then
raises the first thing that stopped them.  Only their messages and their loops differ.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

#: seconds a stopped pool waits for its processes before terminating them (their waits
#: wake on the stop at once; this is for a request in flight); one that took SIGTERM as a
#: stop request and still runs is killed :data:`KILL_AFTER_S` later
STOP_GRACE_S = 2.0
KILL_AFTER_S = 1.0


def shared_budget(client, ctx):
    """The budget every process of the pool draws from: the client's own if it already
    shares one, else a new one started from what the client has spent."""
    budget = client.shared_budget
    if budget is None:
        from re2llm_tui.llm.client import SharedBudget

        budget = SharedBudget(ctx)
        budget.start_from(client.calls_started, client.stats.cost)
    return budget


def run_child(stop, pause, body: Callable[[], None]) -> tuple[str, str]:
    """In a child: install ``stop``/``pause`` as this process's control, run ``body`` and
    say how it ended: ``("done", "")``, ``("budget" | "stopped", why)`` or ``("error",
    one line)``."""
    from re2llm_tui.control import Control, RunStop
    from re2llm_tui.errors import UserError
    from re2llm_tui.runtime.jobs import child_setup

    child_setup(Control(stop=stop, pause=pause), nice=False)
    try:
        body()
    except RunStop as exc:
        return ("budget" if type(exc).__name__ == "BudgetExceeded" else "stopped"), str(exc)
    except UserError as exc:
        return "error", str(exc)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as one line
        return "error", f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return "done", ""


def send_last(q, msg) -> None:
    """A child's last message, flushed before the process exits."""
    q.put(msg)
    q.close()
    q.join_thread()


def end_processes(procs: Sequence, grace: float = STOP_GRACE_S) -> None:
    """Wait up to ``grace`` seconds in all for ``procs`` to end, then terminate the rest,
    and kill what still runs :data:`KILL_AFTER_S` later: never an orphan, never a wait
    without a deadline."""
    deadline = time.monotonic() + grace
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    left = [p for p in procs if p.is_alive()]
    for p in left:
        p.terminate()
    deadline = time.monotonic() + KILL_AFTER_S
    for p in left:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in left:
        if p.is_alive():
            p.kill()
            p.join(1.0)


def raise_outcome(errors: Sequence[str], stop_reason: str | None,
                  budget_reason: str | None) -> None:
    """What ended the pool, in order: the first error (one-line ``UserError``), a stop
    (``StopRequested``), the budget (``BudgetExceeded``); nothing if all finished."""
    from re2llm_tui.control import StopRequested
    from re2llm_tui.errors import UserError
    from re2llm_tui.llm.client import BudgetExceeded

    if errors:
        raise UserError(errors[0])
    if stop_reason:
        raise StopRequested(stop_reason)
    if budget_reason:
        raise BudgetExceeded(budget_reason)
