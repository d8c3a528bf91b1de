"""Long jobs (training, evaluation, reward tables) in spawned child processes.

::

    handle = start_job(training.run_job, spec, name="train")
    handle.poll()            # events since the last poll: dicts with an "event" key
    handle.pause(); handle.resume(); handle.stop()
    handle.shutdown(timeout=2.0)   # stop, wait, then terminate / kill: never an orphan

The target is a module-level function ``fn(spec, emit, control)`` (the child imports its
module when it unpickles it): ``emit(kind, payload: dict)`` sends an event
to the parent; ``control`` (:class:`re2llm_tui.control.Control`) is installed process-wide,
so the local engine, the LLM client and every loop answer pause and stop within a second.
Its return value (a dict) arrives as the ``finished`` event; a one-line error as ``error``.

The child runs one thread for numeric libraries at a lower priority (the UI that started it
keeps the CPU it needs), watches its parent (it stops, keeping its checkpoint, when the
parent is gone however the parent ended), and turns SIGTERM/SIGINT/SIGHUP into a stop.
A job may start worker processes of its own (the reward table's local workers): each
watches its parent the same way, so the whole tree goes when the app goes.
"""

from __future__ import annotations

import os
import queue as queue_mod
import time
from typing import Any, Callable

#: niceness added to a spawned job (the UI that started it wins the CPU)
CHILD_NICE = 10

Emit = Callable[[str, dict], None]
#: states of a job whose process should still be running
_ACTIVE = ("starting", "running", "pausing", "paused", "stopping")


def child_setup(control, *, nice: bool = True) -> None:
    """What every job process does first: one thread per numeric library, a lower
    priority, the control installed, signals and the parent watched."""
    from re2llm_tui import control as control_mod

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    if nice:
        try:
            os.nice(CHILD_NICE)
        except (AttributeError, OSError):
            pass
    control_mod.install(control)
    control_mod.install_signal_handlers(control, hard_second_sigint=False)
    control_mod.watch_parent(control)


def _child_main(target: Callable, spec: Any, q, stop, pause, nice: bool) -> None:
    from re2llm_tui.control import Control, RunStop
    from re2llm_tui.errors import UserError

    def on_pause(paused: bool) -> None:
        q.put({"event": "state", "state": "paused" if paused else "running"})

    control = Control(stop=stop, pause=pause, on_pause=on_pause)
    child_setup(control, nice=nice)

    def emit(kind: str, payload: dict) -> None:
        q.put({"event": kind, **payload})

    try:
        result = target(spec, emit, control)
        q.put({"event": "finished", "result": result})
    except RunStop as exc:
        q.put({"event": "finished", "result": {"status": "stopped", "reason": str(exc)}})
    except UserError as exc:
        q.put({"event": "error", "message": str(exc)})
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, never a traceback in a UI
        q.put({"event": "error",
               "message": f"{type(exc).__name__}: {' '.join(str(exc).split())}"})
    finally:
        # flush the queue's feeder thread before the interpreter exits
        q.close()
        q.join_thread()


class JobHandle:
    """A job in a spawned process (see the module docstring)."""

    def __init__(self, process, q, stop, pause, name: str) -> None:
        self.process, self._q, self._stop, self._pause = process, q, stop, pause
        self.name = name
        self.state = "starting"   # starting | running | pausing | paused | stopping | done | stopped | failed
        self.error: str | None = None
        self.result: dict | None = None
        self.started_at = time.monotonic()
        self._backlog: list[dict] = []      # events drained by join(), returned by poll()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def poll(self) -> list[dict]:
        """Every event since the last poll (``state``/``finished``/``error`` update
        :attr:`state` as they pass)."""
        out, self._backlog = self._backlog, []
        self._drain(out)
        if not self.process.is_alive() and self.state in _ACTIVE:
            time.sleep(0.01)              # what the child put just before exiting
            self._drain(out)
            if self.state in _ACTIVE:
                self.error = f"{self.name} process exited with code {self.process.exitcode}"
                self.state = "failed"
        return out

    def _drain(self, out: list[dict]) -> None:
        while True:
            try:
                msg = self._q.get_nowait()
            except (queue_mod.Empty, EOFError, OSError, ValueError):
                return
            out.append(msg)
            self._apply(msg)

    def _apply(self, msg: dict) -> None:
        kind = msg.get("event")
        if kind == "state":
            if self.state not in ("stopping", "done", "stopped", "failed"):
                if msg["state"] == "paused":
                    self.state = "paused"
                elif self._pause.is_set():
                    self.state = "pausing"
                else:
                    self.state = "running"
        elif kind == "finished":
            self.result = msg.get("result") or {}
            self.state = self.result.get("status", "done")
        elif kind == "error":
            self.error = msg.get("message") or "failed"
            self.state = "failed"
        elif self.state == "starting":
            self.state = "running"

    # ----------------------------------------------------------------- controls
    def is_alive(self) -> bool:
        return self.process.is_alive()

    def pause(self) -> None:
        """Ask the job to pause: :attr:`state` reads ``pausing`` until the child confirms
        that it waits (within a second: the engine checks between tokens)."""
        if self.state in ("starting", "running"):
            self._pause.set()
            self.state = "pausing"

    def resume(self) -> None:
        if self.state in ("pausing", "paused"):
            self._pause.clear()
            self.state = "running"

    def stop(self) -> None:
        self._stop.set()
        self._pause.clear()
        if self.state in ("starting", "running", "pausing", "paused"):
            self.state = "stopping"

    def join(self, timeout: float | None = None) -> dict | None:
        """Wait for the process; the events it sends meanwhile are kept for :meth:`poll`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.process.is_alive():
            self._backlog = self.poll()
            if deadline is not None and time.monotonic() >= deadline:
                break
            self.process.join(0.02)
        self._backlog = self.poll()
        return self.result

    def shutdown(self, timeout: float = 2.0) -> bool:
        """Stop, wait up to ``timeout`` s for a clean exit, then terminate and kill.

        Returns True when the job ended by itself (its checkpoint is saved)."""
        if not self.process.is_alive():
            self.poll()
            return True
        self.stop()
        self.join(timeout)
        clean = not self.process.is_alive()
        if not clean:
            self.process.terminate()
            self.process.join(1.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(1.0)
        return clean

    def terminate(self) -> None:
        if self.process.is_alive():
            self.process.terminate()


def start_job(target: Callable, spec: Any, *, name: str = "job", nice: bool = True) -> JobHandle:
    """Start ``target`` (a module-level function) in a spawned process; see the module
    docstring.  A Textual app must call ``multiprocessing.resource_tracker.ensure_running()``
    before ``App.run()``."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    stop, pause = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_child_main, args=(target, spec, q, stop, pause, nice),
                       name=f"re2llm-{name}", daemon=False)  # daemons may not have workers
    proc.start()
    return JobHandle(proc, q, stop, pause, name)


def shutdown_jobs(jobs, timeout: float = 2.0) -> None:
    """Stop every job (a :class:`JobHandle` or a handle around one), wait up to ``timeout``
    s in all for their checkpoints, then end the ones still running: no job outlives its
    caller (the workbench quitting, or its terminal gone)."""
    for handle in jobs:
        handle.stop()
    deadline = time.monotonic() + timeout
    for handle in jobs:
        handle.join(max(0.0, deadline - time.monotonic()))
    for handle in jobs:
        if handle.is_alive():
            handle.shutdown(0.0)
