"""Sessions: the split's sessions with baseline outcome and reflection status; filters, search."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Static

from re2llm_tui.safe_text import text as safe
from re2llm_tui.store import changes, reflections, runs
from re2llm_tui.tui import views
from re2llm_tui.tui.screens._base import WorkbenchScreen, cursor_row_key
from re2llm_tui.tui.widgets.app_header import AppHeader
from re2llm_tui.tui.widgets.footer import WorkbenchFooter


class SessionsScreen(WorkbenchScreen):
    DATA_SOURCES = (changes.RUNS, changes.REFLECTIONS)
    AUTO_FOCUS = "#sessions-table"
    BINDINGS = [
        Binding("enter", "open", "Open", show=False),
        Binding("m", "toggle_miss", "Misses"),
        Binding("n", "toggle_unreflected", "Unreflected"),
        Binding("slash", "search", "Search", key_display="/"),
        Binding("t", "app.toggle_split", "Split"),
        Binding("r", "recommend", "Recommend"),
        Binding("f", "reflect", "Reflect"),
        Binding("escape", "clear_search", "Clear", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.miss_only = False
        self.unreflected_only = False
        self.query_text = ""
        self.rows: list[views.SessionRow] = []

    def compose(self) -> ComposeResult:
        yield AppHeader("Sessions")
        with Horizontal(id="sessions-bar"):
            yield Input(placeholder="/ search history and target titles", id="search")
            yield Static("", id="filters")
        yield DataTable(id="sessions-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="sessions-summary")
        yield WorkbenchFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("session", key="id", width=12)
        table.add_column("len", key="len", width=4)
        table.add_column("baseline", key="baseline", width=9)
        table.add_column("rank", key="rank", width=5)
        table.add_column("reflected", key="reflected", width=10)
        table.add_column("proposed", key="proposed", width=9)
        table.add_column("target", key="target")
        self.reload()
        table.focus()

    # ----------------------------------------------------------------- data
    def reload(self) -> None:
        app = self.app
        sessions = app.sessions()
        self._sessions = {s.id: s for s in sessions}
        ranks, self._n_runs = runs.baseline_ranks(app.db, app.config.dataset, app.config.split)
        self.rows = views.session_rows(sessions, ranks, reflections.reflection_counts(
            app.db, app.config.dataset))
        self._fill()

    def _visible(self) -> list[views.SessionRow]:
        q = self.query_text.casefold().strip()
        out = []
        for row in self.rows:
            if self.miss_only and row.baseline != "miss":
                continue
            if self.unreflected_only and row.n_reflections:
                continue
            if q:
                s = self._sessions[row.id]
                if not any(q in t.casefold() for t in (*s.history, s.target)):
                    continue
            out.append(row)
        return out

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        current = self.selected_id()
        table.clear()
        visible = self._visible()
        for row in visible:
            base = Text(row.baseline, style={"hit": "green", "miss": "red"}.get(row.baseline,
                                                                               "dim"))
            rank = str(row.baseline_rank) if row.baseline_rank is not None else (
                "—" if not row.has_baseline else "none")
            refl = Text(f"yes ({row.n_reflections})", style="cyan") if row.n_reflections \
                else Text("no", style="dim")
            table.add_row(row.id, str(row.history_len), base, rank, refl,
                          str(row.n_proposed) if row.n_reflections else "",
                          Text(self._sessions[row.id].target), key=row.id)
        if current and current in {r.id for r in visible}:
            table.move_cursor(row=table.get_row_index(current))
        flags = []
        if self.miss_only:
            flags.append("misses only")
        if self.unreflected_only:
            flags.append("not reflected")
        if self.query_text:
            flags.append(f"search {self.query_text!r}")
        self.query_one("#filters", Static).update(safe(" · ".join(flags) or "all sessions",
                                                       oneline=True))
        n_runs = self._n_runs       # counted by reload: a filter change runs no query
        n_miss = sum(r.baseline == "miss" for r in self.rows)
        n_hit = sum(r.baseline == "hit" for r in self.rows)
        where = (f"baseline (newest no-hint ranking, {n_runs} run(s)): {n_hit} hits, "
                 f"{n_miss} misses" if n_runs else "no baseline yet: press r on a session, or "
                 "run `re2llm-tui recommend` / `score`")
        self.query_one("#sessions-summary", Static).update(
            safe(f"{len(visible)} of {len(self.rows)} sessions · {where}"))

    def selected_id(self) -> str | None:
        return cursor_row_key(self.query_one(DataTable))

    # ----------------------------------------------------------------- actions
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self._open(event.row_key.value)

    def action_open(self) -> None:
        sid = self.selected_id()
        if sid:
            self._open(sid)

    def _open(self, session_id: str) -> None:
        from re2llm_tui.tui.screens.session_detail import SessionDetailScreen

        self.app.push_screen(SessionDetailScreen(session_id))

    def action_toggle_miss(self) -> None:
        self.miss_only = not self.miss_only
        self._fill()

    def action_toggle_unreflected(self) -> None:
        self.unreflected_only = not self.unreflected_only
        self._fill()

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_clear_search(self) -> None:
        inp = self.query_one("#search", Input)
        inp.value = ""
        self.query_text = ""
        self._fill()
        self.query_one(DataTable).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_text = event.value
        self._fill()
        self.query_one(DataTable).focus()

    def action_recommend(self) -> None:
        sid = self.selected_id()
        if sid:
            self.app.recommend(sid)

    def action_reflect(self) -> None:
        sid = self.selected_id()
        if sid:
            self.app.reflect(sid)

    def palette_actions(self):
        sid = self.selected_id()
        out = [("Sessions: toggle misses only", "show only sessions the baseline missed",
                self.action_toggle_miss),
               ("Sessions: toggle not yet reflected", "hide reflected sessions",
                self.action_toggle_unreflected),
               ("Sessions: search titles", "focus the search box", self.action_search)]
        if sid:
            out += [(f"Open session {sid}", "history, candidates, rankings", self.action_open),
                    (f"Recommend {sid}", "run the LLM on this session (no hint)",
                     self.action_recommend),
                    (f"Reflect on {sid}", "Reflective Exploration of this session",
                     self.action_reflect)]
        return out
