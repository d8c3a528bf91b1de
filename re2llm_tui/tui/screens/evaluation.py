"""Evaluation: run the comparison of policies; its table and a bar chart of NDCG@10."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from ... import metrics
from ..messages import EvaluationFinished
from ..widgets.app_header import AppHeader
from ..widgets.charts import BarChart
from ..widgets.footer import WorkbenchFooter
from ._base import WorkbenchScreen


class EvaluationScreen(WorkbenchScreen):
    BINDINGS = [Binding("e", "evaluate", "Evaluate")]

    def compose(self) -> ComposeResult:
        yield AppHeader("Evaluation")
        with VerticalScroll(id="eval-table-col"):
            yield Static("No evaluation yet: press e to compare no hint, the trained agent, a "
                         "random hint, the best single hint, the oracle and the content ranker "
                         f"on the {self.app.config.eval_split} split.", id="eval-table")
        yield BarChart("NDCG@10 per policy", id="eval-chart")
        yield WorkbenchFooter()

    def on_mount(self) -> None:
        if self.app.last_evaluation is not None:
            self.show_evaluation(self.app.last_evaluation)

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

    def palette_actions(self):
        return [("Evaluate policies", "run the comparison on the test split",
                 self.action_evaluate)]
