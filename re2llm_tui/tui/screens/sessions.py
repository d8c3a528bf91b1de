"""Sessions: the split's sessions with baseline outcome and reflection status; filters, search.

A split is shown a page (:data:`PAGE` sessions) at a time, read from the dataset as it is
shown (``]`` next page, ``[`` previous): the release's splits fit one page; an imported
split of 500,000 sessions opens as fast.  The filters and the title search walk the split
from the page's start (the misses are read by id: the workspace knows them).
"""

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


#: sessions per page (the release's largest split, 500, is one page)
PAGE = 500


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
        self.start = 0                       # split position the page starts at
        self._starts: list[int] = []         # the earlier pages' starts
        self._next: int | None = None        # where the next page starts (None: no more)
        self._split: str | None = None

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
        """Re-read the workspace's figures and the current page (the first page after the
        split changed)."""
        app = self.app
        split = app.config.split
        if split != self._split:
            self._split, self.start, self._starts = split, 0, []
        self._ranks, self._n_runs = runs.baseline_ranks(app.db, app.config.dataset, split)
        self._reflections = reflections.reflection_counts(app.db, app.config.dataset)
        self._total = app.config.ds.count(split)
        self._misses = sorted(self._index(sid) for sid, r in self._ranks.items()
                              if sid.startswith(f"{split}-") and self._index(sid) >= 0
                              and (r is None or r > 10))
        self._load_page()
        self._fill()

    @staticmethod
    def _index(session_id: str) -> int:
        num = session_id.rpartition("-")[2]
        return int(num) if num.isdigit() else -1

    def _fetch(self, pos: int, n: int) -> tuple[list, int | None]:
        """Up to ``n`` sessions from split position ``pos`` on (misses only and the search
        applied), and where to go on from."""
        ds, split = self.app.config.ds, self.app.config.split
        q = self.query_text.strip()
        if self.miss_only:
            later = [i for i in self._misses if i >= pos]
            part = later[:n]
            found = ds.by_ids(f"{split}-{i:04d}" for i in part)
            if q:
                fold = q.casefold()
                found = [s for s in found
                         if any(fold in t.casefold() for t in (*s.history, s.target))]
            return found, (part[-1] + 1 if len(later) > n else None)
        if q:
            return ds.search(split, q, pos, n)
        rows = ds.page(split, pos, n + 1)          # one more: is there a next page?
        return rows[:n], (rows[n - 1].index + 1 if len(rows) > n else None)

    def _load_page(self) -> None:
        out, pos, nxt = [], self.start, None
        while len(out) < PAGE:
            batch, nxt = self._fetch(pos, PAGE)
            for s in batch:
                if self.unreflected_only and self._reflections.get(s.id, (0, 0))[0]:
                    continue
                out.append(s)
                if len(out) == PAGE:
                    nxt = s.index + 1 if (s is not batch[-1] or nxt is not None) else None
                    break
            if nxt is None or len(out) == PAGE:
                break
            pos = nxt
        self._next = nxt
        self._sessions = {s.id: s for s in out}
        self.rows = views.session_rows(out, self._ranks, self._reflections)

    def _restart(self) -> None:
        """The filters changed: back to the first page."""
        self.start, self._starts = 0, []
        self._load_page()
        self._fill()

    def _visible(self) -> list[views.SessionRow]:
        """The rows shown: the current page, the filters applied."""
        return list(self.rows)

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
        split = self.app.config.split
        mine = [r for sid, r in self._ranks.items() if sid.startswith(f"{split}-")]
        n_miss = sum(r is None or r > 10 for r in mine)
        n_hit = len(mine) - n_miss
        where = (f"baseline (newest no-hint ranking, {n_runs} run(s)): {n_hit} hits, "
                 f"{n_miss} misses" if n_runs else "no baseline yet: press r on a session, or "
                 "run `re2llm-tui recommend` / `score`")
        paged = ""
        if self._starts or self._next is not None:
            paged = (f" (page {len(self._starts) + 1} from #{self.start}; "
                     "] next page, [ previous)")
        self.query_one("#sessions-summary", Static).update(
            safe(f"{len(visible)} of {self._total} sessions{paged} · {where}"))

    # ----------------------------------------------------------------- pages
    def on_key(self, event) -> None:
        """``]`` / ``[``: the next / previous page (said in the summary line when a split
        has more than one page, and in the command palette)."""
        if event.key in ("right_square_bracket", "left_square_bracket") \
                and not isinstance(self.focused, Input):
            event.stop()
            if event.key == "right_square_bracket":
                self.action_next_page()
            else:
                self.action_previous_page()

    def action_next_page(self) -> None:
        if self._next is None:
            self.app.notify("no more sessions", timeout=2)
            return
        self._starts.append(self.start)
        self.start = self._next
        self._load_page()
        self._fill()

    def action_previous_page(self) -> None:
        if not self._starts:
            return
        self.start = self._starts.pop()
        self._load_page()
        self._fill()

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
        self._restart()

    def action_toggle_unreflected(self) -> None:
        self.unreflected_only = not self.unreflected_only
        self._restart()

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_clear_search(self) -> None:
        inp = self.query_one("#search", Input)
        inp.value = ""
        self.query_text = ""
        self._restart()
        self.query_one(DataTable).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_text = event.value
        self._restart()
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
               ("Sessions: search titles", "focus the search box", self.action_search),
               ("Sessions: next page", "the next sessions of a large split (])",
                self.action_next_page),
               ("Sessions: previous page", "([)", self.action_previous_page)]
        if sid:
            out += [(f"Open session {sid}", "history, candidates, rankings", self.action_open),
                    (f"Recommend {sid}", "run the LLM on this session (no hint)",
                     self.action_recommend),
                    (f"Reflect on {sid}", "Reflective Exploration of this session",
                     self.action_reflect)]
        return out
