"""Evaluation: run the comparison of policies; its progress, table and a bar chart of NDCG@10.

The evaluation runs in its own process (:mod:`re2llm_tui.runtime.jobs`): while it computes the
outcomes its rows need, the status line shows outcomes known/total, the rate and the ETA,
and the chart shows each hint's mean reward over the outcomes known so far; then the table
and a chart of NDCG@10 per policy replace them.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from re2llm_tui.evaluation import metrics
from re2llm_tui.safe_text import text as safe
from re2llm_tui.tui.messages import EvaluationFinished
from re2llm_tui.tui.screens._base import WorkbenchScreen
from re2llm_tui.tui.widgets.app_header import AppHeader
from re2llm_tui.tui.widgets.charts import BarChart
from re2llm_tui.tui.widgets.footer import WorkbenchFooter
from re2llm_tui.costs.run_plan import fmt_duration


class EvaluationScreen(WorkbenchScreen):
    BINDINGS = [Binding("e", "evaluate", "Evaluate"),
                Binding("x", "stop", "Stop")]

    def compose(self) -> ComposeResult:
        yield AppHeader("Evaluation")
        yield Static("", id="eval-status")
        with VerticalScroll(id="eval-table-col"):
            yield Static(safe(
                "No evaluation yet: press e to compare no hint, the trained agent, a random "
                "hint, the best single hint, the oracle and the content ranker on the "
                f"{self.app.config.eval_split} split."), id="eval-table")
        yield BarChart("NDCG@10 per policy", id="eval-chart")
        yield WorkbenchFooter()

    def on_mount(self) -> None:
        self.show_evaluation_progress()
        if self.app.last_evaluation is not None:
            self.show_evaluation(self.app.last_evaluation)

    def show_evaluation_progress(self) -> None:
        app = self.app
        state = app.evaluation_state
        p = app.evaluation_progress
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
        if app.evaluation_note:
            line += f"\n{app.evaluation_note}"
        self.query_one("#eval-status", Static).update(safe(line))
        if p is not None and state in ("starting", "running", "pausing", "paused", "stopping"):
            means = p.get("hint_means") or []
            pairs = [("none" if a == 0 else f"a{a}", float(m)) for a, m in enumerate(means)
                     if m is not None]
            self.query_one("#eval-chart", BarChart).draw(
                [x[0] for x in pairs], [x[1] for x in pairs],
                title="mean reward per action over the outcomes known so far")

    def show_evaluation(self, result: EvaluationFinished) -> None:
        rows = result.rows
        baseline = next((k for k in rows if "no hint" in k.lower() or k.lower() in
                         ("none", "no_hint", "nohint")), None)
        self.query_one("#eval-table", Static).update(metrics.format_table(
            rows, title=f"{self.app.config.dataset} / {self.app.config.eval_split}",
            baseline=baseline, paired=result.paired or None))
        self.query_one("#eval-chart", BarChart).draw(
            list(rows), [float(s.get("ndcg@10", 0.0)) for s in rows.values()])

    def action_evaluate(self) -> None:
        self.app.evaluate()

    def action_stop(self) -> None:
        self.app.stop_evaluation()

    def palette_actions(self):
        return [("Evaluate policies", "run the comparison on the test split",
                 self.action_evaluate),
                ("Stop the evaluation", "finished outcomes are kept", self.action_stop)]
