"""Runs: every stored run of the workspace; select several and compare them.

Output runs (``score`` imports, ``recommend`` runs, evaluation rows) and training runs are
listed from :mod:`re2llm_tui.store.catalog`; ``k`` switches between the two.  ``space``
selects runs, ``c`` compares the selection:

* output runs: the metric table over the sessions they share with the paired bootstrap
  difference to the first selected run, a bar chart of one metric with its CI whiskers (``m``
  cycles the metric) and the configuration fields that differ
  (:func:`re2llm_tui.evaluation.run_compare.compare_runs`, as ``re2llm-tui runs compare``);
  ``b`` drills down into the sessions where a run beats the first one (or loses to it) and
  opens them in session detail;
* training runs: their reward curves overlaid on one chart, aligned by step.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import DataTable, Static

from re2llm_tui.errors import UserError
from re2llm_tui.evaluation.metrics import METRICS
from re2llm_tui.safe_text import text as safe
from re2llm_tui.store import catalog, changes
from re2llm_tui.tui.screens._base import WorkbenchScreen, cursor_row_key
from re2llm_tui.tui.widgets.app_header import AppHeader
from re2llm_tui.tui.widgets.charts import LineChart
from re2llm_tui.tui.widgets.ci_chart import CIChart
from re2llm_tui.tui.widgets.footer import WorkbenchFooter

OUTPUT_COLUMNS = ("", "run", "kind", "split", "model", "n", "HR@10", "NDCG@10", "failed",
                  "cost", "date", "status", "name")
TRAIN_COLUMNS = ("", "run", "status", "step", "seed", "final reward", "best reward",
                 "best eval", "model", "date", "name")


def _fmt(v, places: int = 3) -> str:
    return "—" if v is None else f"{v:.{places}f}"


def _ci(metrics: dict | None, m: str) -> str:
    if not metrics or m not in metrics:
        return "—"
    lo, hi = (metrics.get("ci") or {}).get(m, (None, None))
    if lo is None:
        return f"{metrics[m]:.3f}"
    return f"{metrics[m]:.3f} ±{(hi - lo) / 2:.3f}"


class RunsScreen(WorkbenchScreen):
    DATA_SOURCES = (changes.RUNS, changes.TRAIN_RUNS)
    AUTO_FOCUS = "#runs-table"
    BINDINGS = [
        Binding("space", "toggle_select", "Select"),
        Binding("c", "compare", "Compare"),
        Binding("m", "metric", "Metric"),
        Binding("b", "drill", "Sessions"),
        Binding("x", "export", "Export"),
        Binding("k", "kind", "Training"),
        Binding("a", "all_datasets", "All datasets", show=False),
        Binding("escape", "clear", "Clear", show=False),
    ]

    #: training runs instead of output runs
    show_train: reactive[bool] = reactive(False, init=False)
    #: every dataset's runs instead of the app's dataset's
    all_datasets: reactive[bool] = reactive(False, init=False)
    #: the metric of the chart and of the paired differences
    metric: reactive[str] = reactive("ndcg@10", init=False)

    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict] = []
        self.selected: list[str] = []          # refs, in the order chosen (first = baseline)
        self.comparison = None                 # the last output-run comparison
        self.curves: dict | None = None        # the last training-curve overlay

    def compose(self) -> ComposeResult:
        yield AppHeader("Runs")
        yield Static("", id="runs-status")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="runs-compare"):
            yield Static(safe("Select two or more runs with space, then press c to compare "
                              "them on the sessions they share."), id="runs-compare-table")
            yield CIChart(id="runs-ci-chart")
            yield Static("", id="runs-config-diff")
        yield LineChart("reward per training run", id="runs-curves")
        yield WorkbenchFooter()

    def on_mount(self) -> None:
        self.query_one("#runs-curves").display = False
        self.query_one("#runs-ci-chart").display = False
        self.reload()
        self.query_one(DataTable).focus()

    # ----------------------------------------------------------------- data
    def reload(self) -> None:
        app = self.app
        self.records = catalog.list_runs(
            app.db, dataset=None if self.all_datasets else app.config.dataset,
            kind=catalog.TRAIN if self.show_train else catalog.OUTPUT)
        known = {r["ref"] for r in self.records}
        self.selected = [ref for ref in self.selected if ref in known]
        self._fill()

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        current = self.cursor_ref()
        table.clear(columns=True)
        for col in TRAIN_COLUMNS if self.show_train else OUTPUT_COLUMNS:
            # the selection column is sized for its marks up front (cells change in place)
            table.add_column(col, key=col or "sel", width=None if col else 2)
        for r in self.records:
            mark = self._mark(r["ref"])
            date = (r.get("created_at") or "")[:16].replace("T", " ")
            if self.show_train:
                status = r["status"] + (" (live)" if r.get("alive") else "")
                cells = [mark, r["ref"], status, f"{r.get('step') or 0}/{r.get('total_steps')}",
                         str(r.get("seed")), _fmt(r.get("final_reward")),
                         _fmt(r.get("best_reward")), _fmt(r.get("best_eval_reward")),
                         safe(r.get("model") or "—", oneline=True), date,
                         safe(r["name"], oneline=True)]
            else:
                m = r.get("metrics")
                cells = [mark, r["ref"], r["kind"], r["split"],
                         safe(r.get("model") or "—", oneline=True), str(r.get("n") or 0),
                         _ci(m, "hr@10"), _ci(m, "ndcg@10"), str(r.get("failed") or 0),
                         f"${r.get('cost') or 0:.4f}", date, r["status"],
                         safe(r["name"], oneline=True)]
            table.add_row(*cells, key=r["ref"])
        refs = [r["ref"] for r in self.records]
        if current in refs:
            table.move_cursor(row=refs.index(current))
        self._status()

    def _mark(self, ref: str):
        """The selection column: the run's place in the selection (1 = the baseline)."""
        if ref not in self.selected:
            return ""
        return Text(str(self.selected.index(ref) + 1), style="bold green")

    def _status(self) -> None:
        what = "training runs" if self.show_train else "output runs"
        where = "all datasets" if self.all_datasets else self.app.config.dataset
        sel = ", ".join(self.selected) if self.selected else "none"
        need = ("c overlays their reward curves" if self.show_train else
                "c compares (the first selected is the baseline)")
        self.query_one("#runs-status", Static).update(safe(
            f"{len(self.records)} {what} · {where} · selected: {sel} · space selects, {need}"
            f" · metric {self.metric.upper()} (m)"))

    def cursor_ref(self) -> str | None:
        return cursor_row_key(self.query_one(DataTable))

    # ----------------------------------------------------------------- selection
    def action_toggle_select(self) -> None:
        ref = self.cursor_ref()
        if ref is None:
            return
        if ref in self.selected:
            self.selected.remove(ref)
        else:
            self.selected.append(ref)
        table = self.query_one(DataTable)
        for r in self.records:                   # the places after a removed run move up
            table.update_cell(r["ref"], "sel", self._mark(r["ref"]))
        self._status()
        if table.cursor_row + 1 < table.row_count:   # like a file manager: on to the next run
            table.move_cursor(row=table.cursor_row + 1)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_toggle_select()

    def action_clear(self) -> None:
        self.selected = []
        self._fill()

    def watch_show_train(self) -> None:
        self.selected = []
        self.query_one("#runs-curves").display = self.show_train
        self.query_one("#runs-compare").display = not self.show_train
        self.reload()

    def watch_all_datasets(self) -> None:
        self.reload()

    def watch_metric(self) -> None:
        self._status()
        if self.comparison is not None:
            self.action_compare()

    def action_kind(self) -> None:
        self.show_train = not self.show_train

    def action_all_datasets(self) -> None:
        self.all_datasets = not self.all_datasets

    def action_metric(self) -> None:
        i = METRICS.index(self.metric) if self.metric in METRICS else -1
        self.metric = METRICS[(i + 1) % len(METRICS)]

    # ----------------------------------------------------------------- comparing
    def action_compare(self) -> None:
        if self.show_train:
            self._compare_curves()
            return
        if len(self.selected) < 2:
            self.notify("select two or more runs with space first", severity="warning")
            return
        from re2llm_tui.evaluation.run_compare import compare_runs

        try:
            cmp = compare_runs(self.app.db, self.selected, metric=self.metric)
        except UserError as exc:
            self.notify(str(exc), severity="error")
            return
        self.comparison = cmp
        from re2llm_tui.evaluation.metrics import format_table

        first = cmp.records[0]
        # rows named by run id: the names are in the list above
        rows = {f"run {ref}": cmp.rows[cmp.labels[ref]] for ref in cmp.refs}
        paired = {f"run {ref}": cmp.paired[cmp.labels[ref]] for ref in cmp.refs[1:]}
        self.query_one("#runs-compare-table", Static).update(format_table(
            rows, baseline=f"run {first['ref']}", paired=paired, validity=False,
            title=f"{first['dataset']}/{first['split']}: {len(cmp.sessions)} shared sessions; "
                  f"Δ{cmp.metric.upper()} vs run {first['ref']}: paired bootstrap "
                  f"({cmp.n_boot} resamples)"))
        rows = []
        for ref in cmp.refs:
            s = cmp.rows[cmp.labels[ref]]
            lo, hi = s["ci"][self.metric]
            rows.append((f"run {ref}", float(s[self.metric]), float(lo), float(hi)))
        chart = self.query_one("#runs-ci-chart", CIChart)
        chart.display = True
        chart.draw(
            rows, title=f"{self.metric.upper()} with 95% bootstrap CIs, "
                        f"{len(cmp.sessions)} shared sessions")
        self.query_one("#runs-config-diff", Static).update(self._diff_text(cmp))

    def _diff_text(self, cmp) -> Text:
        out = Text()
        dropped = {ref: n for ref, n in cmp.dropped.items() if n}
        if dropped:
            out.append("left out (not scored by every run): " + ", ".join(
                f"run {ref}: {n} session(s)" for ref, n in dropped.items()) + "\n", style="dim")
        if not cmp.config_diff:
            out.append("configuration: the runs differ in nothing recorded\n")
        else:
            out.append("configuration that differs\n", style="bold")
            for name, values in cmp.config_diff.items():
                vals = " │ ".join(f"{ref}: {v}" for ref, v in zip(cmp.refs, values))
                out.append_text(safe(f"  {name}: {vals}", oneline=True))
                out.append("\n")
        for ref in cmp.refs[1:]:
            w = cmp.wins(ref)
            out.append(f"run {ref} vs run {cmp.refs[0]}: better on {w['wins']}, worse on "
                       f"{w['losses']}, tied on {w['ties']} sessions "
                       f"({self.metric.upper()}) · b lists them\n")
        return out

    def _compare_curves(self) -> None:
        if not self.selected:
            self.notify("select one or more training runs with space first",
                        severity="warning")
            return
        from re2llm_tui.evaluation.run_compare import train_curves

        try:
            self.curves = train_curves(self.app.db, self.selected)
        except UserError as exc:
            self.notify(str(exc), severity="error")
            return
        steps = self.curves["steps"]
        series = {}
        for ref, values in self.curves["series"].items():
            pts = [(s, v) for s, v in zip(steps, values) if v is not None]
            series[f"{ref}: {self.curves['labels'][ref]}"] = ([p[0] for p in pts],
                                                               [p[1] for p in pts])
        self.query_one("#runs-curves", LineChart).draw(
            series, title=f"{self.curves['tag']} by step", xlabel="step")

    # ----------------------------------------------------------------- export
    def action_export(self) -> None:
        """The compared runs (with their paired differences), else the selected runs, as
        CSV, Markdown and LaTeX beside the workspace (``exports/``), like ``runs export``."""
        if self.show_train:
            self.notify("training runs: export their scalars with `re2llm-tui runs "
                        "export-scalars`", severity="warning")
            return
        from re2llm_tui.evaluation.run_export import write_exports

        cmp = self.comparison if self.comparison is not None and \
            self.comparison.refs == self.selected else None
        if cmp is not None:
            records, stem = cmp.records, "compare-" + "-".join(cmp.refs)
        else:
            records = [r for ref in self.selected for r in self.records if r["ref"] == ref]
            stem = "runs-" + "-".join(r["ref"] for r in records)
        if not records:
            self.notify("select runs with space first (c compares them: the export then "
                        "carries the paired differences)", severity="warning")
            return
        from re2llm_tui.errors import UserError

        folder = self.app.config.db_path.resolve().parent / "exports"
        try:   # atomic files, never onto the workspace or an SQLite file
            paths = write_exports(records, folder, stem, comparison=cmp,
                                  workspace=self.app.config.db_path)
        except UserError as exc:
            self.notify(f"export failed: {exc}", severity="error", markup=False)
            return
        except OSError as exc:
            self.notify(f"export failed: {exc.strerror or exc}", severity="error")
            return
        self.notify(f"wrote {', '.join(p.name for p in paths)} to {folder}", title="export",
                    timeout=8)

    # ----------------------------------------------------------------- drill-down
    def action_drill(self) -> None:
        cmp = self.comparison
        if cmp is None or self.show_train:
            self.notify("compare two or more output runs first (space, then c)",
                        severity="warning")
            return
        if cmp.records[0]["dataset"] != self.app.config.dataset:
            self.notify(f"these runs are on {cmp.records[0]['dataset']}: open the workbench "
                        "on that dataset to see their sessions", severity="warning")
            return
        other = self.cursor_ref()
        if other not in cmp.refs[1:]:
            other = cmp.refs[1]
        from re2llm_tui.tui.screens.run_sessions import RunSessionsScreen

        self.app.push_screen(RunSessionsScreen(cmp, better=other, worse=cmp.refs[0]))

    def palette_actions(self):
        return [("Runs: compare the selected runs", "metric table, paired differences, CIs",
                 self.action_compare),
                ("Runs: export", "the comparison (or the selected runs) as CSV, Markdown "
                 "and LaTeX", self.action_export),
                ("Runs: training runs / output runs", "switch the list", self.action_kind),
                ("Runs: all datasets / this dataset", "filter the list",
                 self.action_all_datasets)]
