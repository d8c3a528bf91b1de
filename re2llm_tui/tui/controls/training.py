"""The training job of the workbench: start, pause, resume, stop and watch the spawned
training process, and keep what the Training screen shows (no Textual widget or screen).

The watcher thread polls the process and posts
:class:`~re2llm_tui.tui.messages.TrainingProgress` (bursts merge) and
:class:`~re2llm_tui.tui.messages.TrainingStateChanged`; the host hands them back on its UI
thread to :meth:`TrainingControl.apply_progress` / :meth:`TrainingControl.apply_state`, the
only places the state changes while a run is watched.
"""

from __future__ import annotations

import time

from re2llm_tui.tui.config import error_line
from re2llm_tui.tui.controls.host import (
    LIVE_STATES,
    STOP_WAIT_S,
    WATCH_S,
    Host,
    JobControl,
    background,
    on_ui,
)
from re2llm_tui.tui.messages import (
    PlanProposed,
    TrainingBatch,
    TrainingProgress,
    TrainingStateChanged,
)
from re2llm_tui.tui.monitor import TrainingMonitor

class TrainingControl(JobControl):
    """One training run at a time, in a spawned process (see the module docstring).

    ``state`` is ``idle`` before the first run, then the process's state (``starting`` ...
    ``done`` / ``stopped`` / ``failed``); ``phase`` is ``table`` (the reward table) or
    ``ppo``; ``resumable_run`` the stopped run offered to resume; ``plan`` the proposed
    :class:`~re2llm_tui.costs.run_plan.RunPlan` being trained, evaluated when it is done.
    """

    def __init__(self, host: Host, preflight=None) -> None:
        super().__init__(host, preflight)
        self.monitor = TrainingMonitor()
        self.phase = ""
        self.resumable_run: dict | None = None
        self.plan = None
        self._last_plan = None

    # ----------------------------------------------------------------- starting
    def propose(self) -> None:
        """``s`` on the Training screen.  With the embedded demo model, first propose a run
        sized to finish in about 15 minutes (posted as :class:`PlanProposed`: Enter starts
        it, f the full set); a real model starts the full run (after its cost preflight)."""
        if self.is_running():
            self.host.notify("training is already running (x stops it)", severity="warning")
            return
        if not self.config.is_demo_model or self.config.train_options.get("limit"):
            self.confirm(self.start)
            return
        background(self.host, self._propose, name="plan", title="size a first run")

    def _propose(self) -> None:
        from re2llm_tui.costs.run_plan import propose

        db = self.host.open_db()
        try:
            plan = propose(db, self.host.llm(), self.config.ds, workers=1)
        finally:
            db.conn.close()
        self.host.post_message(PlanProposed(plan))

    def confirm(self, start, *, resume: bool = False) -> None:
        """Start ``start`` through the cost preflight (``resume``: the run on offer)."""
        limit = self.config.train_options.get("limit")
        if resume and limit is None and self.resumable_run is not None:
            limit = self.resumable_run.get("n_sessions") or None
        if self.preflight is None:
            start()
        else:
            self.preflight.confirm("train", start, train_limit=limit)

    def start(self, resume: bool = False, plan=None) -> None:
        """Start the agent's training in a spawned process (``resume``: continue the latest
        unfinished run of this dataset/model from its checkpoint; ``plan``: a
        :class:`~re2llm_tui.costs.run_plan.RunPlan` slice, evaluated when training ends)."""
        handle = self.handle
        if handle is not None and handle.is_alive():
            if handle.state in ("done", "stopped", "failed"):
                # the previous run has finished and its process is exiting: start after it
                self.host.notify("waiting for the previous training process to exit …",
                                 timeout=3)
                background(self.host, self._start_after_exit, handle, resume, plan,
                           name="training-start", title="start training")
            else:
                self.host.notify("training is already running (x stops it)",
                                 severity="warning")
            return
        from re2llm_tui.utilization.training import start_training_process

        c = self.config
        opts = dict(c.train_options)
        if "api_bases" in c.llm_options:
            opts.setdefault("api_bases", tuple(c.llm_options["api_bases"]))
        opts.setdefault("workers", 1)          # the UI keeps the other core
        if c.samples > 1:
            opts.setdefault("samples", c.samples)
        if plan is not None:
            opts.update(limit=plan.train_sessions, steps=plan.steps,
                        log_every=plan.log_every, prefill=True)
        elif resume and self.resumable_run is not None and "limit" not in opts:
            # resume exactly the run on offer (its session slice and budget)
            run = self.resumable_run
            if run.get("n_sessions"):
                opts["limit"] = int(run["n_sessions"])
            opts.setdefault("steps", int(run.get("total_steps") or 0) or 500_000)
            opts.setdefault("seed", int(run.get("seed") or 1))
        try:
            self.handle = start_training_process(
                c.dataset, model=c.model, db_path=str(c.db_path), data_dir=c.data_root,
                resume=resume, **opts)
        except Exception as exc:  # noqa: BLE001 - one line, the app goes on
            self.host.notify(error_line(exc), title="training", severity="error", timeout=12)
            return
        if plan is not None:
            self._last_plan = plan
        elif resume and self._last_plan is not None and \
                opts.get("limit") == self._last_plan.train_sessions:
            plan = self._last_plan          # resuming the proposed run: evaluate it after
        self.plan = plan
        _, actions = self.host.kb().actions()
        self.monitor.clear()
        self.monitor.action_labels = ["none" if h == 0 else f"#{h}" for h, _ in actions]
        self.state = "starting"
        self.resumable_run = None
        # said at once, whatever the watcher first sees: the app settles its memory on it
        self.host.post_message(TrainingStateChanged("starting"))
        what = ("resuming the latest unfinished run" if resume else
                f"proposed run: {plan.train_sessions} sessions x {plan.n_actions} actions, "
                f"then evaluation of {plan.eval_sessions} test sessions" if plan is not None
                else "started a new run")
        self.host.notify(what, title="training", timeout=5)
        self.watch(self.handle, "training")

    def _start_after_exit(self, handle, resume: bool, plan) -> None:
        handle.join(timeout=10)
        if handle.is_alive():
            handle.shutdown(STOP_WAIT_S)
        on_ui(self.host, self.start, resume, plan)

    def _watch(self, handle) -> None:
        """Poll the training process; post its scalars (bursts merge) and state changes."""
        last = None
        while not self._ended.is_set():
            alive = handle.is_alive()
            scalars = handle.poll()
            if scalars:
                self.host.post_message(TrainingProgress(TrainingBatch(list(scalars))))
            now = (handle.state, handle.phase, handle.step, handle.llm_calls)
            if now != last:
                last = now
                self.host.post_message(TrainingStateChanged(
                    handle.state, handle.error or "", phase=handle.phase, step=handle.step,
                    llm_calls=handle.llm_calls))
            if not alive and handle.state not in LIVE_STATES:
                return
            time.sleep(WATCH_S)

    # ----------------------------------------------------------------- what the watcher posts
    def apply_progress(self, message: TrainingProgress) -> None:
        self.monitor.add(message.batch.scalars)

    def apply_state(self, message: TrainingStateChanged):
        """The process's new state; returns the proposed run to evaluate now that it is
        trained (else None)."""
        self.state = message.state
        self.phase = message.phase
        mon = self.monitor
        mon.step = max(mon.step, message.step)
        if message.llm_calls:
            mon.latest["charts/llm_calls"] = message.llm_calls
        mon.version += 1
        to_evaluate = None
        if message.state == "failed":
            self.host.notify(message.detail or "training failed", title="training failed",
                             severity="error", timeout=15)
            self.refresh_resumable()
        elif message.state in ("done", "stopped"):
            summary = getattr(self.handle, "summary", None) or {}
            self.host.notify(f"{message.state} at step {summary.get('step', message.step)}"
                             + (f" ({summary.get('reason')})" if summary.get("reason") else "")
                             + "; the checkpoint is kept", title="training", timeout=6)
            if message.state == "done" and self.plan is not None:
                to_evaluate, self.plan = self.plan, None
            self.refresh_resumable()
        return to_evaluate

    # ----------------------------------------------------------------- the user's keys
    def refresh_resumable(self) -> None:
        """Find the run the Training screen offers to resume (stopped, or running with a
        dead process), reading the workspace through the host's UI-thread connection."""
        from re2llm_tui.utilization.training import resumable_run

        try:
            self.resumable_run = resumable_run(self.host.db, self.config.dataset,
                                               self.config.model)
        except Exception:  # noqa: BLE001 - a damaged record must not stop the app
            self.resumable_run = None

    def pause(self) -> None:
        if not self.is_running():
            self.host.notify("training is not running", severity="warning")
            return
        self.handle.pause()
        self.state = self.handle.state

    def resume(self) -> None:
        """Continue a paused run, or resume the latest stopped one from its checkpoint."""
        if self.is_running() and self.handle.state in ("paused", "pausing"):
            self.handle.resume()
            self.state = self.handle.state
        else:
            self.confirm(lambda: self.start(resume=True), resume=True)

    def stop(self) -> None:
        if not self.is_running():
            return
        self.handle.stop()
        self.state = self.handle.state
        self.host.notify("stopping: the run saves its checkpoint (c resumes it)",
                         title="training", timeout=4)

    # ----------------------------------------------------------------- what the screen shows
    def status_line(self) -> str:
        """The Training screen's status: state, phase and the true figures of the run (also
        after a resume or a restart of the app), or the run that can be resumed."""
        from re2llm_tui.costs.run_plan import fmt_duration

        mon = self.monitor
        latest = mon.latest

        def val(name, fmt="{:.0f}"):
            v = latest.get(name)
            return "—" if v is None else (fmt.format(v) if isinstance(v, (int, float))
                                          else str(v))

        state, handle, run = self.state, self.handle, self.resumable_run
        if handle is None or state == "idle" or (state in ("stopped", "failed") and run):
            if run is None:
                if self.config.is_demo_model:
                    return ("state idle · s starts a run (with the demo model: a run sized to "
                            "finish in about 15 minutes)")
                return ("state idle · s starts a run (its cost is estimated first and you are "
                        "asked before anything is paid)")
            table = (f" · reward table {run['table_known']}/{run['table_size']}"
                     if run.get("table_size") else "")
            how = "its process is gone" if run.get("dead") else run["status"]
            word = state if state in ("stopped", "failed") else "resumable"
            return (f"state {word} · run {run['id']} ({how}) at step {run['step']} of "
                    f"{run['total_steps']}{table} · c resumes it, s starts a new one")
        head = f"state {state}"
        if self.phase == "table" and "table/total" in latest:
            eta = latest.get("table/eta_s")
            per = latest.get("table/per_min") or 0.0
            return (f"{head} · phase 1/2 · reward table {val('table/done')}/"
                    f"{val('table/total')} · rows {val('table/rows_done')}/"
                    f"{val('table/rows_total')} · {per:.1f} outcomes/min · ETA "
                    f"{fmt_duration(eta) if per else '—'} · LLM calls {val('table/calls')}"
                    f" · failed {val('table/failed')} · cost ${val('table/cost', '{:.4f}')}")
        total = (handle.run or {}).get("total_steps")
        steps = f"step {mon.step}" + (f"/{total}" if total else "")
        phase = " · phase 2/2 (PPO)" if self.phase == "ppo" else ""
        if self.phase in ("", "starting") and state in ("starting", "running"):
            return f"{head} · starting the training process …"
        return (f"{head}{phase} · {steps} · steps/s {val('charts/steps_per_s')} · "
                f"LLM calls {val('charts/llm_calls')} · "
                f"reward {val('charts/reward_mean', '{:+.4f}')} · "
                f"eval {val('charts/eval_reward', '{:+.4f}')}")
