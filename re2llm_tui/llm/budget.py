"""``--max-calls`` and ``--max-cost``: checked when a request is about to be sent.

:class:`CallBudget` counts one client's requests (cache hits are free); with a
:class:`SharedBudget` the count and the cost are shared by several processes (a job's
workers).  Once a limit is reached the next request raises :class:`BudgetExceeded` before it
is sent; in-flight calls may overshoot ``max_cost`` by at most the concurrency.
"""

from __future__ import annotations

import math
import threading

from re2llm_tui.llm.errors import BudgetExceeded


def _calls_reached(max_calls: int, sent: int) -> BudgetExceeded:
    return BudgetExceeded(f"--max-calls {max_calls} reached ({sent} calls sent); rerun to resume")


def _cost_reached(max_cost: float, spent: float) -> BudgetExceeded:
    return BudgetExceeded(f"--max-cost ${max_cost:g} reached (${spent:.4f} spent); "
                          "rerun to resume")


def _counted(cost) -> float:
    """A cost as the budget counts it: a finite number >= 0 (a NaN or negative cost from a
    broken price table or server never lowers the spend)."""
    try:
        c = float(cost)
    except (TypeError, ValueError):
        return 0.0
    return c if math.isfinite(c) and c > 0 else 0.0


class SharedBudget:
    """``--max-calls`` / ``--max-cost`` counted across processes (a job's workers share one).

    Pass the same instance to every process's :class:`~re2llm_tui.llm.client.LLMClient`
    (``shared_budget=``); it crosses into spawned processes as process-shared values.
    """

    def __init__(self, ctx=None) -> None:
        import multiprocessing

        ctx = ctx or multiprocessing.get_context("spawn")
        self.lock = ctx.Lock()
        self.calls = ctx.Value("q", 0, lock=False)
        self.cost = ctx.Value("d", 0.0, lock=False)

    def start_from(self, calls: int, cost: float) -> None:
        """Count ``calls`` already sent and ``cost`` already spent (by the parent's client)."""
        with self.lock:
            self.calls.value = int(calls)
            self.cost.value = float(cost)

    def reserve(self, max_calls: int | None, max_cost: float | None) -> None:
        with self.lock:
            if max_calls is not None and self.calls.value >= max_calls:
                raise _calls_reached(max_calls, self.calls.value)
            if max_cost is not None and self.cost.value >= max_cost:
                raise _cost_reached(max_cost, self.cost.value)
            self.calls.value += 1

    def spend(self, cost: float) -> None:
        cost = _counted(cost)
        if cost:
            with self.lock:
                self.cost.value += float(cost)


class CallBudget:
    """One client's budget; ``shared`` (a :class:`SharedBudget`) replaces the local counts."""

    def __init__(self, max_calls: int | None, max_cost: float | None,
                 shared: SharedBudget | None = None) -> None:
        self.max_calls = max_calls
        self.max_cost = max_cost
        self.shared = shared
        #: requests reserved against ``max_calls`` by this client
        self.started = 0
        self._lock = threading.Lock()

    def reserve(self, spent: float) -> None:
        """Count one request about to be sent, or raise :class:`BudgetExceeded`.  ``spent``:
        the cost of this client's finished calls (its :class:`~re2llm_tui.llm.results.Stats`)."""
        with self._lock:
            if self.shared is not None:
                self.shared.reserve(self.max_calls, self.max_cost)
            else:
                if self.max_calls is not None and self.started >= self.max_calls:
                    raise _calls_reached(self.max_calls, self.started)
                if self.max_cost is not None and spent >= self.max_cost:
                    raise _cost_reached(self.max_cost, spent)
            self.started += 1

    def spend(self, cost: float) -> None:
        """A sent request's cost (the local total is the client's ``Stats.cost``)."""
        if self.shared is not None:
            self.shared.spend(_counted(cost))
