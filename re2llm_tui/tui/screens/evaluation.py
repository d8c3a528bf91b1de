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
from re2llm_tui.tui.controls.host import LIVE_STATES
from re2llm_tui.tui.messages import EvaluationFinished
from re2llm_tui.tui.screens._base import WorkbenchScreen
from re2llm_tui.tui.widgets.app_header import AppHeader
from re2llm_tui.tui.widgets.charts import BarChart
from re2llm_tui.tui.widgets.footer import WorkbenchFooter


class EvaluationScreen(WorkbenchScreen):
    SHOWS = frozenset({"split", "evaluation"})
    _shown: EvaluationFinished | None = None     # the result on screen
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
        if self.app.evaluation.result is not None:
            self.show_evaluation(self.app.evaluation.result)

    def show_changes(self, whats: set[str]) -> None:
        super().show_changes(whats)
        if "evaluation" in whats:
            self.show_evaluation_progress()
            result = self.app.evaluation.result
            if result is not None and result is not self._shown:
                self.show_evaluation(result)

    def show_evaluation_progress(self) -> None:
        ev = self.app.evaluation
        self.query_one("#eval-status", Static).update(safe(ev.status_line()))
        p = ev.progress
        if p is not None and ev.state in LIVE_STATES:
            means = p.get("hint_means") or []
            pairs = [("none" if a == 0 else f"a{a}", float(m)) for a, m in enumerate(means)
                     if m is not None]
            self.query_one("#eval-chart", BarChart).draw(
                [x[0] for x in pairs], [x[1] for x in pairs],
                title="mean reward per action over the outcomes known so far")

    def show_evaluation(self, result: EvaluationFinished) -> None:
        self._shown = result
        rows = result.rows
        baseline = next((k for k in rows if "no hint" in k.lower() or k.lower() in
                         ("none", "no_hint", "nohint")), None)
        self.query_one("#eval-table", Static).update(metrics.format_table(
            rows, title=f"{self.app.config.dataset} / {self.app.config.eval_split}",
            baseline=baseline, paired=result.paired or None))
        self.query_one("#eval-chart", BarChart).draw(
            list(rows), [float(s.get("ndcg@10", 0.0)) for s in rows.values()])

    def action_evaluate(self) -> None:
        self.app.evaluation.request()

    def action_stop(self) -> None:
        self.app.evaluation.stop()

    def palette_actions(self):
        return [("Evaluate policies", "run the comparison on the test split",
                 self.action_evaluate),
                ("Stop the evaluation", "finished outcomes are kept", self.action_stop)]
