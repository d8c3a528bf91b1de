"""The evaluation job of the workbench: compare the policies in a spawned process, watch
it and keep what the Evaluation screen shows (no Textual widget or screen).

The watcher thread posts :class:`~re2llm_tui.tui.messages.EvaluationProgress` and, at the
end, :class:`~re2llm_tui.tui.messages.EvaluationFinished`; the host hands them back on its
UI thread to :meth:`EvaluationControl.apply_progress` / :meth:`EvaluationControl.apply_finished`.
"""

from __future__ import annotations

import time

from re2llm_tui.tui.config import error_line
from re2llm_tui.tui.controls.host import LIVE_STATES, WATCH_S, Host, JobControl
from re2llm_tui.tui.messages import EvaluationFinished, EvaluationProgress

class EvaluationControl(JobControl):
    """One evaluation at a time (see the module docstring): ``state`` (``idle`` before the
    first), ``progress`` (the outcome progress, a dict), ``note`` (what was left out) and
    ``result`` (the last :class:`EvaluationFinished`)."""

    def __init__(self, host: Host, preflight=None) -> None:
        super().__init__(host, preflight)
        self.progress: dict | None = None
        self.note = ""
        self.result: EvaluationFinished | None = None

    def request(self) -> None:
        """``e``: the evaluation, after its cost preflight with a priced model."""
        if self.preflight is None:
            self.start()
        else:
            self.preflight.confirm("evaluate", self.start)

    def start(self, plan=None) -> None:
        """Compare the policies in a spawned process (``plan``: its test slice, oracle row
        only when it fits the plan's budget)."""
        from re2llm_tui.evaluation.compare import EvalSpec, run_job
        from re2llm_tui.runtime.jobs import start_job

        if self.is_running():
            self.host.notify("an evaluation is already running (x stops it)",
                             severity="warning")
            return
        c = self.config
        opts = dict(c.eval_options)
        if plan is not None:
            opts.update(limit=plan.eval_sessions, oracle=plan.oracle)
        if c.samples > 1:
            opts.setdefault("samples", c.samples)
        workers = opts.pop("workers", 1)       # `run --client-procs N`; else the UI keeps a core
        spec = EvalSpec(dataset=c.dataset, split=c.eval_split, model=c.model,
                        db_path=str(c.db_path), data_dir=c.data_root, workers=workers,
                        llm_options=dict(c.llm_options), **opts)
        try:
            self.handle = start_job(run_job, spec, name="evaluate")
        except Exception as exc:  # noqa: BLE001 - one line, the app goes on
            self.host.notify(error_line(exc), title="evaluation", severity="error", timeout=12)
            return
        self.progress = None
        self.state = "starting"
        note = ""
        if plan is not None and not plan.oracle:
            from re2llm_tui.costs.run_plan import fmt_duration

            note = (f"oracle row left out: it needs {plan.oracle_missing} more outcomes "
                    f"(~{fmt_duration(plan.oracle_s)} on this model)")
        self.note = note
        self.host.notify(f"evaluating policies on {c.eval_split}"
                         + (f" (first {plan.eval_sessions} sessions)" if plan else "") + " …",
                         title="evaluation", timeout=4)
        self.watch(self.handle, "evaluation")

    def _watch(self, handle) -> None:
        last_state = None
        while not self._ended.is_set():
            alive = handle.is_alive()
            for msg in handle.poll():
                if msg.get("event") == "table":
                    self.host.post_message(EvaluationProgress(handle.state, msg))
            if handle.state != last_state:
                last_state = handle.state
                self.host.post_message(EvaluationProgress(handle.state, None))
            if not alive and handle.state not in LIVE_STATES:
                result = handle.result or {}
                if handle.state == "done" and "rows" in result:
                    self.host.post_message(EvaluationFinished(
                        dict(result["rows"]), result.get("paired"),
                        detail="; ".join(result.get("notes") or [])))
                elif handle.state == "failed":
                    self.host.post_message(EvaluationProgress("failed", None,
                                                              handle.error or ""))
                return
            time.sleep(WATCH_S)

    def apply_progress(self, message: EvaluationProgress) -> None:
        self.state = message.state
        if message.progress is not None:
            self.progress = message.progress
        if message.state == "failed":
            self.host.notify(message.detail or "evaluation failed", title="evaluation failed",
                             severity="error", timeout=15)
        elif message.state == "stopped":
            self.host.notify("evaluation stopped: finished outcomes are stored (e resumes)",
                             title="evaluation", timeout=5)

    def apply_finished(self, message: EvaluationFinished) -> None:
        self.result = message
        self.host.notify(f"{len(message.rows)} policies compared", title="evaluation",
                         timeout=5)

    def stop(self) -> None:
        if self.is_running():
            self.handle.stop()
            self.host.notify("stopping the evaluation: finished outcomes are stored",
                             title="evaluation", timeout=4)

    def status_line(self) -> str:
        """The Evaluation screen's status: the state, the outcomes known and the ETA."""
        from re2llm_tui.costs.run_plan import fmt_duration

        state, p = self.state, self.progress
        if state == "idle":
            line = "e runs the evaluation (in a background process; x stops it)"
        elif p is None:
            line = f"evaluation {state}"
        else:
            per = p.get("per_min") or 0.0
            line = (f"evaluation {state} · outcomes {p['done']}/{p['total']} · sessions "
                    f"{p['rows_done']}/{p['rows_total']} · {per:.1f} outcomes/min · ETA "
                    f"{fmt_duration(p.get('eta_s')) if per else '—'} · LLM calls {p['calls']}"
                    f" · failed {p['failed']}")
        if self.note:
            line += f"\n{self.note}"
        return line
