"""One pool of spawned LLM-client processes, with one parent loop.

:func:`re2llm_tui.runtime.client_procs.run_in_procs` (``--client-procs``: any stage's independent
calls, the coroutine face) and :func:`re2llm_tui.utilization.reward_workers.fill_with_workers`
(reward tables, the blocking face) both run a :class:`Pool`: one
:class:`~re2llm_tui.llm.budget.SharedBudget` across the processes, a child that installs the
stop/pause events as its control and reports how it ended as one ``(status, reason)``, a
parent loop that passes stop and pause on, reports a child that died, delivers every message,
ends its children within a grace period and then raises the first thing that stopped them.
Only the work (a module-level function) and its messages differ.
"""

from __future__ import annotations

import queue as queue_mod
import time
from collections.abc import Callable, Sequence
from typing import Any

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


# --------------------------------------------------------------------------- one pool

def _pool_child(index: int, work: Callable, payload, options: dict, budget, q, stop,
                pause) -> None:
    """A pool process: says it is ready (imports done, control installed), runs
    ``work(payload, options, budget, send)`` and says how it ended."""
    def body() -> None:
        q.put(("ready", index))
        work(payload, options, budget, lambda msg: q.put(("msg", index, msg)))

    send_last(q, ("end", index, *run_child(stop, pause, body)))


class Pool:
    """Spawned processes that run ``work(payload, client_options, budget, send)`` (a
    module-level function) on one payload each, and the one parent loop that drives them:
    one :class:`~re2llm_tui.llm.budget.SharedBudget` started from the parent client's
    spending, the caller's stop and pause passed on within a second, a child that dies
    reported in one line (``what``: "a client process"; ``kept``: "calls") after the others
    finished, every message delivered to ``on_message`` (also those that arrive while
    stopping), then what stopped the pool raised.

    Two faces, one loop (:meth:`step`): ``await pool.run()`` in a coroutine (a pause is
    passed on while the loop keeps draining) and ``pool.run_blocking()`` in plain code (a
    pause waits in ``control.check()``, so the job reports "paused")."""

    def __init__(self, client, payloads: Sequence, work: Callable,
                 on_message: Callable[[Any], None], *, what: str, kept: str,
                 name: str) -> None:
        import multiprocessing

        from re2llm_tui.control import current as current_control

        client.check()
        self.client = client
        self.on_message = on_message
        self.what, self.kept = what, kept
        ctx = multiprocessing.get_context("spawn")
        self.budget = shared_budget(client, ctx)
        self.q = ctx.Queue()
        self.stop, self.pause = ctx.Event(), ctx.Event()
        options = client.options()
        self.procs = []
        for n, payload in enumerate(payloads):
            p = ctx.Process(target=_pool_child,
                            args=(n, work, payload, options, self.budget, self.q, self.stop,
                                  self.pause), name=name, daemon=True)
            p.start()
            self.procs.append(p)
        self.control = current_control()
        self.ended: set[int] = set()
        self.ready: set[int] = set()          # children past their start-up (imports)
        self.stop_reason: str | None = None
        self.budget_reason: str | None = None
        self.errors: list[str] = []
        self._stopping_since: float | None = None
        self._dead_seen: float | None = None

    # ----------------------------------------------------------------- messages
    def _handle(self, msg) -> None:
        if msg[0] == "msg":
            self.on_message(msg[2])
            return
        if msg[0] == "ready":
            self.ready.add(msg[1])
            return
        _, n, status, reason = msg
        self.ended.add(n)
        if status == "budget":
            self.budget_reason = self.budget_reason or reason
        elif status == "stopped":
            self.stop_reason = self.stop_reason or reason
        elif status == "error":
            self.errors.append(reason)

    def _read_all(self) -> None:
        while True:
            try:
                self._handle(self.q.get_nowait())
            except (queue_mod.Empty, OSError, ValueError, EOFError):
                return

    def _stop_now(self, reason: str | None) -> None:
        """A stop: passed on; a child still starting (it has sent nothing and holds no
        work) is terminated now instead of waited for; the others stop within a second,
        keeping every finished call."""
        self.stop_reason = self.stop_reason or reason
        self.stop.set()
        if self._stopping_since is None:
            self._stopping_since = time.monotonic()
            self._read_all()                       # what was said before the stop counts
            for n, p in enumerate(self.procs):
                if n not in self.ready and n not in self.ended:
                    p.terminate()
                    self.ended.add(n)              # stopped by us: not "exited unexpectedly"

    # ----------------------------------------------------------------- the loop
    def step(self, *, block_on_pause: bool) -> float | None:
        """One turn of the parent loop: ``None`` once every child ended (or a stop's grace
        ran out), else how long to wait before the next turn."""
        from re2llm_tui.control import StopRequested

        if len(self.ended) >= len(self.procs):
            return None
        control = self.control
        if control.stopped:
            self._stop_now(control.reason)
        elif control.paused and block_on_pause:
            self.pause.set()
            try:
                control.check()            # waits (and says "paused") until resumed
            except StopRequested as exc:
                self._stop_now(str(exc))
            finally:
                self.pause.clear()
        else:
            (self.pause.set if control.paused else self.pause.clear)()
        if self._stopping_since is not None and \
                time.monotonic() - self._stopping_since > STOP_GRACE_S:
            return None                    # end_processes terminates what is left
        try:
            msg = self.q.get_nowait()
        except queue_mod.Empty:
            dead = [n for n, p in enumerate(self.procs)
                    if n not in self.ended and not p.is_alive()]
            if not dead:
                self._dead_seen = None
                return 0.02
            if self._dead_seen is None:     # its last messages may still be in the pipe
                self._dead_seen = time.monotonic()
                return 0.2
            self._read_all()
            for n in dead:
                if n not in self.ended:
                    self.ended.add(n)
                    code = self.procs[n].exitcode
                    self.errors.append(
                        f"{self.what} exited unexpectedly"
                        + (f" (signal {-code})" if code and code < 0 else
                           f" (exit code {code})" if code else "")
                        + f"; finished {self.kept} are stored: rerun to resume")
            self._dead_seen = None
            return 0.0
        self._handle(msg)
        return 0.0

    def close(self) -> None:
        """End every child (a grace period, then terminate and kill), deliver what they
        sent meanwhile, and take the shared call count back into the client."""
        if len(self.ended) < len(self.procs):
            self.stop.set()
        end_processes(self.procs)
        while True:
            try:
                msg = self.q.get_nowait()
            except (queue_mod.Empty, OSError, ValueError, EOFError):
                break
            if msg[0] == "msg":
                self.on_message(msg[2])
        self.client.calls_started = self.budget.calls.value

    def outcome(self) -> None:
        raise_outcome(self.errors, self.stop_reason, self.budget_reason)

    async def run(self) -> None:
        """The coroutine face: drive the pool to its end, then raise what stopped it."""
        import asyncio

        try:
            while (wait := self.step(block_on_pause=False)) is not None:
                await asyncio.sleep(wait)
        finally:
            self.close()
        self.outcome()

    def run_blocking(self) -> None:
        """The blocking face of :meth:`run`."""
        try:
            while (wait := self.step(block_on_pause=True)) is not None:
                if wait:
                    time.sleep(wait)
        finally:
            self.close()
        self.outcome()
