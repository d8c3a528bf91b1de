"""The sessions where one compared run beats another: the drill-down of the Runs screen.

Rows come from :meth:`re2llm_tui.evaluation.run_compare.Comparison.sessions_where` (largest
gain first); Enter opens a session in session detail, where every stored ranking of it is
shown; ``s`` swaps the two runs (the sessions the other one wins).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from re2llm_tui.safe_text import text as safe
from re2llm_tui.tui.screens._base import WorkbenchScreen, cursor_row_key
from re2llm_tui.tui.widgets.app_header import AppHeader
from re2llm_tui.tui.widgets.footer import WorkbenchFooter


def _rank(r) -> str:
    return "not ranked" if r is None else str(r)


class RunSessionsScreen(WorkbenchScreen):
    AUTO_FOCUS = "#run-sessions-table"
    BINDINGS = [
        Binding("enter", "open", "Open session", show=False),
        Binding("s", "swap", "Swap runs"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, comparison, better: str, worse: str) -> None:
        super().__init__()
        self.comparison, self.better, self.worse = comparison, better, worse
        self.rows: list[dict] = []

    def compose(self) -> ComposeResult:
        yield AppHeader("Runs › sessions")
        yield Static("", id="run-sessions-status")
        yield DataTable(id="run-sessions-table", cursor_type="row", zebra_stripes=True)
        yield WorkbenchFooter()

    def on_mount(self) -> None:
        self._fill()

    def _fill(self) -> None:
        cmp = self.comparison
        metric = cmp.metric
        self.rows = cmp.sessions_where(self.better, self.worse)
        table = self.query_one(DataTable)
        table.clear(columns=True)
        for col in ("session", f"rank in run {self.better}", f"rank in run {self.worse}",
                    f"Δ{metric.upper()}", "target"):
            table.add_column(col)
        ds = self.app.config.ds
        for row in self.rows:
            try:
                target = ds.session(row["session_id"]).target
            except Exception:        # a session the dataset no longer has
                target = "?"
            table.add_row(row["session_id"], _rank(row["rank_better"]),
                          _rank(row["rank_worse"]), f"{row['gain']:+.3f}",
                          safe(target, oneline=True), key=row["session_id"])
        self.query_one("#run-sessions-status", Static).update(safe(
            f"run {self.better} beats run {self.worse} on {len(self.rows)} of "
            f"{len(cmp.sessions)} shared sessions ({metric.upper()}, largest gain first) · "
            "Enter opens one · s swaps the runs · Esc back"))
        self.query_one(DataTable).focus()

    def selected_id(self) -> str | None:
        return cursor_row_key(self.query_one(DataTable))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self._open(event.row_key.value)

    def action_open(self) -> None:
        sid = self.selected_id()
        if sid:
            self._open(sid)

    def _open(self, session_id: str) -> None:
        from re2llm_tui.tui.screens.session_detail import SessionDetailScreen

        self.app.push_screen(SessionDetailScreen(session_id))

    def action_swap(self) -> None:
        self.better, self.worse = self.worse, self.better
        self._fill()
