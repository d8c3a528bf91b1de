"""Pause and stop for long jobs, answered within a second.

Every long loop of the core consults one process-wide :class:`Control`:

* the local engine between decode chunks and generated tokens (it calls :func:`check`),
* the LLM client before it sends a request,
* the reward table, the PPO trainer and the evaluation between steps.

``check()`` returns at once when nothing is asked, blocks while paused, and raises
:class:`StopRequested` once a stop is asked; finished work is already stored by then, so a
stopped job resumes where it stopped.  The flags are ``threading`` or ``multiprocessing``
events (a parent process sets them for its child).

:func:`install_signal_handlers` turns SIGINT/SIGTERM/SIGHUP into a stop request (a second
SIGINT interrupts at once), and :func:`watch_parent` stops a child process whose parent has
gone -- however the parent ended -- so no process outlives the app that started it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any, Callable


class RunStop(Exception):
    """The job must stop now; everything finished is stored and the job resumes on a rerun."""

    exit_code = 1


class StopRequested(RunStop):
    """A stop was asked (the stop key, Ctrl+C, SIGTERM, the parent process gone)."""

    exit_code = 130

    def __init__(self, reason: str = "stopped on request") -> None:
        super().__init__(reason)


#: seconds between two looks at the flags while paused
PAUSE_POLL_S = 0.05


class Control:
    """Stop and pause flags of one job (anything with ``is_set()``/``set()``/``clear()``).

    ``on_pause(paused: bool)`` is called when a check actually starts and ends waiting, so a
    UI can show "paused" only once nothing is being spent.
    """

    def __init__(self, stop: Any = None, pause: Any = None,
                 on_pause: Callable[[bool], None] | None = None) -> None:
        self.stop = stop if stop is not None else threading.Event()
        self.pause = pause if pause is not None else threading.Event()
        self.on_pause = on_pause
        self.reason = "stopped on request"

    # ----------------------------------------------------------------- asking
    def request_stop(self, reason: str | None = None) -> None:
        if reason and not self.stop.is_set():
            self.reason = reason
        self.stop.set()
        self.pause.clear()

    @property
    def stopped(self) -> bool:
        return self.stop.is_set()

    @property
    def paused(self) -> bool:
        return self.pause.is_set()

    # ----------------------------------------------------------------- answering
    def check(self) -> None:
        """Return at once, wait while paused, or raise :class:`StopRequested`."""
        if self.stop.is_set():
            raise StopRequested(self.reason)
        if not self.pause.is_set():
            return
        self._notify(True)
        try:
            while self.pause.is_set() and not self.stop.is_set():
                time.sleep(PAUSE_POLL_S)
        finally:
            self._notify(False)
        if self.stop.is_set():
            raise StopRequested(self.reason)

    async def acheck(self) -> None:
        """:meth:`check` for coroutines: waits without blocking the event loop."""
        import asyncio

        if self.stop.is_set():
            raise StopRequested(self.reason)
        if not self.pause.is_set():
            return
        self._notify(True)
        try:
            while self.pause.is_set() and not self.stop.is_set():
                await asyncio.sleep(PAUSE_POLL_S)
        finally:
            self._notify(False)
        if self.stop.is_set():
            raise StopRequested(self.reason)

    # ----------------------------------------------------------------- waiting
    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` unless stopped: a stop raises :class:`StopRequested` at once
        (within :data:`PAUSE_POLL_S`); while paused the clock stops until resumed."""
        left = max(0.0, float(seconds))
        self.check()
        while left > 0:
            t0 = time.monotonic()
            time.sleep(min(left, PAUSE_POLL_S))
            if self.pause.is_set() or self.stop.is_set():
                self.check()           # waits out a pause (the clock stands) or raises
                continue
            left -= time.monotonic() - t0
        self.check()

    async def asleep(self, seconds: float, answer=None) -> None:
        """:meth:`sleep` for coroutines (never blocks the event loop): every wait of the LLM
        client (backoff, ``Retry-After``) goes through here, so a stop ends it at once and
        a pause holds its clock.  ``answer``: the coroutine function awaited instead of
        :meth:`acheck` to answer pause and stop (it may raise to end the sleep)."""
        import asyncio

        answer = answer or self.acheck
        left = max(0.0, float(seconds))
        await answer()
        while left > 0:
            t0 = time.monotonic()
            await asyncio.sleep(min(left, PAUSE_POLL_S))
            if self.pause.is_set() or self.stop.is_set():
                await answer()
                continue
            left -= time.monotonic() - t0
        await answer()

    async def until_stopped(self, aw):
        """Await ``aw`` (a coroutine or future) unless a stop comes first: then ``aw`` is
        cancelled and :class:`StopRequested` raised (within :data:`PAUSE_POLL_S`).  One
        watcher per event loop polls the stop flag, and only while something waits."""
        import asyncio

        task = asyncio.ensure_future(aw)
        if self.stop.is_set():
            task.cancel()
            raise StopRequested(self.reason)
        watch = _StopWatch.enter(self)
        try:
            await asyncio.wait({task, watch.future}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            raise
        finally:
            watch.leave()
        if task.done():
            return task.result()
        task.cancel()
        raise StopRequested(self.reason)

    def _notify(self, paused: bool) -> None:
        if self.on_pause is not None:
            try:
                self.on_pause(paused)
            except Exception:  # noqa: BLE001 - a report must never break the job
                pass


class _StopWatch:
    """One poller per (control, event loop) that resolves a future when the control is
    stopped; it ends when no one waits any more (no task is left pending on the loop)."""

    _watches: dict = {}

    def __init__(self, control: Control, loop) -> None:
        self.control, self.loop, self.users = control, loop, 0
        self.future = loop.create_future()
        self.task = loop.create_task(self._poll())

    @classmethod
    def enter(cls, control: Control) -> "_StopWatch":
        import asyncio

        loop = asyncio.get_running_loop()
        key = (id(control), id(loop))
        watch = cls._watches.get(key)
        if watch is None or watch.users <= 0 or watch.task.done() or watch.loop is not loop:
            watch = cls._watches[key] = cls(control, loop)
        watch.users += 1
        return watch

    def leave(self) -> None:
        self.users -= 1
        if self.users <= 0 and not self.task.done():
            self.task.cancel()        # nothing left pending on the loop

    async def _poll(self) -> None:
        import asyncio

        try:
            while self.users > 0:
                if self.control.stop.is_set():
                    if not self.future.done():
                        self.future.set_result(True)
                    return
                await asyncio.sleep(PAUSE_POLL_S)
        finally:
            key = (id(self.control), id(self.loop))
            if _StopWatch._watches.get(key) is self:
                del _StopWatch._watches[key]


_current = Control()


def current() -> Control:
    """The control of this process's job (a never-set one by default)."""
    return _current


def install(control: Control) -> Control:
    """Make ``control`` this process's control (the local engine asks it: :func:`check`)."""
    global _current
    _current = control
    return control


def check() -> None:
    """``current().check()``."""
    _current.check()


# --------------------------------------------------------------------------- signals

def install_signal_handlers(control: Control | None = None, *, hard_second_sigint: bool = True):
    """SIGINT, SIGTERM and SIGHUP ask ``control`` (default: the current one) to stop.

    A second SIGINT raises :class:`KeyboardInterrupt` at once (the user insists).  Only in
    the main thread; returns the previous handlers so a caller can restore them.
    """
    control = control or _current
    if threading.current_thread() is not threading.main_thread():
        return {}
    names = {signal.SIGINT: "interrupted (Ctrl+C)", signal.SIGTERM: "terminated (SIGTERM)"}
    if hasattr(signal, "SIGHUP"):
        names[signal.SIGHUP] = "the terminal closed (SIGHUP)"
    previous = {}

    def handler(signum, frame):  # noqa: ARG001
        if signum == signal.SIGINT and control.stopped and hard_second_sigint:
            raise KeyboardInterrupt
        control.request_stop(names.get(signum, "stopped by a signal"))

    for sig in names:
        try:
            previous[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):  # pragma: no cover - not the main thread / platform
            pass
    return previous


def restore_signal_handlers(previous: dict) -> None:
    for sig, old in previous.items():
        try:
            signal.signal(sig, old)
        except (ValueError, OSError, TypeError):  # pragma: no cover
            pass


# --------------------------------------------------------------------------- parent watch

def watch_parent(control: Control, parent_pid: int | None = None, *, grace_s: float = 5.0,
                 poll_s: float = 0.2) -> threading.Thread:
    """A daemon thread that stops ``control`` when the parent process is gone, and ends
    this process ``grace_s`` seconds later if the job did not finish by itself.

    Polling ``getppid()`` catches every way a parent ends (q, a crash, SIGKILL, the
    terminal closing): an orphan is re-parented, so its parent pid changes.
    """
    parent = parent_pid if parent_pid is not None else os.getppid()

    def alive() -> bool:
        if os.getppid() != parent:
            return False
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # pragma: no cover - exists, not ours
            return True
        return True

    def run() -> None:
        while alive():
            time.sleep(poll_s)
        control.request_stop("the app that started this job has gone")
        time.sleep(grace_s)
        os._exit(3)

    t = threading.Thread(target=run, name="re2llm-parent-watch", daemon=True)
    t.start()
    return t


def end_process_now(code: int) -> None:
    """End this process at once with exit status ``code``, skipping every cleanup (for a
    process one of whose threads may be blocked for good, e.g. on a closed terminal);
    finished work is stored by then."""
    os._exit(code)


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists (False for None and for this process)."""
    if not pid or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as gone
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().split(b") ", 1)[-1][:1] != b"Z"
    except OSError:
        return True
