"""The reward table as a view: sessions x actions, each cell ``r(s, h)`` on a colour scale.

Rows are the sessions of the reward table (of the app's model; :func:`re2llm_tui.kb.evidence.
load_matrix` chooses the context; the train split's, as the evidence), columns "no hint" and every hint whose current text has
outcomes.  The latest finished training run's choice is marked in each row (◆, and the
"agent" column).  The value under the cursor, with both NDCG@10s and ranks, is on the line
below.  ``s`` sorts the rows by the reward of the hint under the cursor (again: the other
way), ``i`` by session; Enter opens the session with that hint's ranking beside the no-hint
one.

The grid (:class:`~re2llm_tui.tui.widgets.reward_grid.RewardGrid`) draws only the visible
lines from pre-built segments: a key costs the lines it changes, also at 500 x 21.  The table
is built once; new outcomes (a training run filling the table) only mark the view stale --
``r`` rebuilds it -- so a run in the background costs the cursor nothing.
"""

from __future__ import annotations

import numpy as np
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from re2llm_tui.safe_text import clean
from re2llm_tui.store import changes
from re2llm_tui.tui.screens._base import WorkbenchScreen
from re2llm_tui.tui.widgets.app_header import AppHeader
from re2llm_tui.tui.widgets.footer import WorkbenchFooter
from re2llm_tui.tui.widgets.reward_grid import RewardGrid

LEVELS = 6
_NEUTRAL = (38, 38, 38)
_GREEN = (30, 150, 80)
_RED = (190, 50, 40)


def _mix(a, b, w: float) -> str:
    return "#%02x%02x%02x" % tuple(int(round(x + (y - x) * w)) for x, y in zip(a, b))


#: cell styles by sign and level (|r| on a square-root scale, so small effects show)
STYLES = {(sign, lvl): Style(color="white", bgcolor=_mix(_NEUTRAL, _GREEN if sign > 0 else _RED,
                                                         lvl / LEVELS))
          for sign in (-1, 1) for lvl in range(LEVELS + 1)}
UNKNOWN = Style(color="grey42")


def cell_style(r: float) -> Style:
    if not np.isfinite(r):
        return UNKNOWN
    lvl = int(round(min(1.0, abs(float(r))) ** 0.5 * LEVELS))
    return STYLES[(1 if r >= 0 else -1, lvl)]


def cell(r: float, picked: bool) -> tuple[str, Style]:
    """A cell's text and style: the reward, ◆ where the agent picks this action."""
    if not np.isfinite(r):
        return " ·", UNKNOWN
    style = cell_style(r)
    return (f"{r:+.2f}" + ("◆" if picked else ""),
            style + Style(bold=True) if picked else style)


class RewardTableScreen(WorkbenchScreen):
    DATA_SOURCES = (changes.REWARDS, changes.TRAIN_RUNS, changes.KB)
    AUTO_FOCUS = "#rt-table"
    BINDINGS = [
        Binding("escape,backspace", "back", "Back"),
        Binding("s", "sort_hint", "Sort by hint"),
        Binding("i", "sort_session", "Sort by session"),
        Binding("r", "rebuild", "Reload"),
    ]

    def __init__(self, sort_hint: int | None = None) -> None:
        super().__init__()
        self.sort_hint = sort_hint
        self.sort_desc = True
        self.matrix = None
        self.actions: list[tuple[int, str, str]] = []     # (hint id, text, key); 0 first
        self.rewards = np.zeros((0, 0))
        self.choices: dict[str, int] = {}
        self.run_id: int | None = None
        self.order: list[str] = []

    def compose(self) -> ComposeResult:
        yield AppHeader("Reward table")
        yield Static("", id="rt-status")
        yield RewardGrid(id="rt-table")
        yield Static("", id="rt-cell")
        yield WorkbenchFooter()

    def on_mount(self) -> None:
        self.rebuild()

    # ----------------------------------------------------------------- data
    def reload(self) -> None:
        """New outcomes, runs or hints: say so; ``r`` rebuilds (a rebuild a second while a
        run fills the table would cost the cursor its responsiveness)."""
        if self.matrix is not None:
            self._status(stale=True)

    def rebuild(self) -> None:
        from re2llm_tui.errors import UserError
        from re2llm_tui.kb.evidence import load_matrix
        from re2llm_tui.kb.hint_stats import latest_agent_use
        from re2llm_tui.utilization.rewards import hint_key

        db, cfg = self.app.db, self.app.config
        grid = self.query_one("#rt-table", RewardGrid)
        self._loaded_key = self.data_key()
        try:
            matrix = load_matrix(db, cfg.dataset, model=cfg.model)
        except UserError as exc:
            self.matrix = None
            grid.set_data([], [], ("", ""), [], [])
            self.app.notify(str(exc), title="reward table", severity="warning", timeout=6)
            self.query_one("#rt-status", Static).update(Text(str(exc), style="yellow"))
            self.query_one("#rt-cell", Static).update("")
            return
        self.matrix = matrix
        hints = sorted(self.app.kb().hints(), key=lambda h: h.id)
        self.actions = [(0, "", "")] + [(h.id, h.text, hint_key(h.text)) for h in hints
                                        if matrix.col(hint_key(h.text)) is not None]
        self.rewards = np.stack([matrix.rewards(k) for _, _, k in self.actions], axis=1) \
            if matrix.sessions else np.zeros((0, len(self.actions)))
        self._row_of = {s: i for i, s in enumerate(matrix.sessions)}
        self._col_of = {f"a{hid}": j for j, (hid, _, _) in enumerate(self.actions)}
        use = latest_agent_use(db, cfg.dataset, matrix.model)
        self.run_id = use.run_id if use is not None else None
        self.choices = dict(use.choices or {}) if use is not None else {}
        if self.sort_hint is not None and f"a{self.sort_hint}" not in self._col_of:
            self.app.notify(f"hint #{self.sort_hint} has no outcome in this reward table",
                            title="reward table", severity="warning", timeout=5)
            self.sort_hint = None
        labels, cells = [], []
        for i, sid in enumerate(matrix.sessions):
            pick = self.choices.get(sid)
            labels.append((sid, "" if pick is None else f"#{pick}" if pick else "none"))
            cells.append([cell(self.rewards[i, j], pick == hid)
                          for j, (hid, _, _) in enumerate(self.actions)])
        grid.set_data(list(matrix.sessions), labels, ("session", "agent"),
                      ["none" if hid == 0 else f"#{hid}" for hid, _, _ in self.actions], cells)
        self._sort()
        self._status()
        self._cell()

    # ----------------------------------------------------------------- display
    def _status(self, stale: bool = False) -> None:
        m = self.matrix
        t = Text()
        t.append(f"{len(m.sessions)} sessions × {len(self.actions)} actions", style="bold")
        t.append(f" · model {clean(m.model, oneline=True)} · {m.split} split · NDCG@10 gain "
                 "over no hint · ")
        t.append("◆ ", style="bold")
        t.append(f"training run #{self.run_id}'s choice" if self.run_id and self.choices
                 else "no agent choices recorded")
        how = (f"by hint #{self.sort_hint} ({'largest' if self.sort_desc else 'smallest'} "
               "first)" if self.sort_hint is not None else "by session")
        t.append(f" · sorted {how} · s/i sort, r reload")
        if stale:
            t.append(" · the data changed: r reloads", style="bold yellow")
        self.query_one("#rt-status", Static).update(t)

    def on_reward_grid_moved(self, event: RewardGrid.Moved) -> None:
        self._cell(event.row_key, event.col)

    def _cursor(self) -> tuple[str, int] | None:
        return self.query_one("#rt-table", RewardGrid).cursor_key()

    def _cell(self, sid: str | None = None, j: int | None = None) -> None:
        if sid is None:
            at = self._cursor()
            sid, j = at if at is not None else (None, None)
        out = self.query_one("#rt-cell", Static)
        if sid is None or self.matrix is None or not self.actions:
            out.update("")
            return
        i = self._row_of.get(sid)
        t = Text()
        t.append(f"{sid}", style="bold")
        pick = self.choices.get(sid)
        hid, text, key_ = self.actions[j]
        r = self.rewards[i, j]
        t.append(f" · {'no hint' if hid == 0 else f'#{hid}'}")
        if hid:
            t.append(f" {clean(text, oneline=True)[:60]}", style="italic")
        m = self.matrix
        if np.isfinite(r):
            t.append(" · reward ")
            t.append(f"{r:+.3f}", style=cell_style(r))
            base, mine = m.col(""), m.col(key_)
            t.append(f" (NDCG@10 {m.ndcg[i, base]:.3f} → {m.ndcg[i, mine]:.3f}, rank "
                     f"{_rank(m.rank[i, base])} → {_rank(m.rank[i, mine])})")
        else:
            t.append(" · no reward stored", style="dim")
        if pick is not None:
            t.append(" · agent: " + ("no hint" if pick == 0 else f"#{pick}"))
        out.update(t)

    def _sort(self) -> None:
        grid = self.query_one("#rt-table", RewardGrid)
        if self.matrix is None or not grid.row_count:
            return
        sessions = self.matrix.sessions
        if self.sort_hint is None:
            order = sorted(range(len(sessions)), key=lambda i: sessions[i])
        else:
            col = self.rewards[:, self._col_of[f"a{self.sort_hint}"]]
            sign = -1.0 if self.sort_desc else 1.0
            vals = np.where(np.isfinite(col), sign * col, np.inf)     # unknown last
            order = sorted(range(len(col)), key=lambda i: (vals[i], sessions[i]))
        grid.set_order(order)

    # ----------------------------------------------------------------- actions
    def action_sort_hint(self) -> None:
        at = self._cursor()
        if at is None:
            return
        hid = self.actions[at[1]][0]
        self.sort_desc = not self.sort_desc if hid == self.sort_hint else True
        self.sort_hint = hid
        self._sort()
        self._status()

    def action_sort_session(self) -> None:
        self.sort_hint = None
        self._sort()
        self._status()

    def action_rebuild(self) -> None:
        self.rebuild()

    def on_reward_grid_selected(self, event: RewardGrid.Selected) -> None:
        from re2llm_tui.tui.screens.session_detail import SessionDetailScreen

        j, sid = event.col, event.row_key
        if self.matrix is None:
            return
        hint = None
        if self.actions[j][0]:
            hid, text, key = self.actions[j]
            hint = {"model": self.matrix.model, "context": self.matrix.context,
                    "hint_id": hid, "hint_key": key, "text": text}
        self.app.push_screen(SessionDetailScreen(sid, reward_hint=hint))

    def action_back(self) -> None:
        self.app.pop_screen()

    def palette_actions(self):
        return [("Reward table: sort by the hint under the cursor", "", self.action_sort_hint),
                ("Reward table: sort by session", "", self.action_sort_session),
                ("Reward table: reload", "", self.action_rebuild),
                ("Back", "", self.action_back)]


def _rank(r) -> str:
    r = int(r)
    return "?" if r < 0 else ("—" if r == 0 else str(r))
