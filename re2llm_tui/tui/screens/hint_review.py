"""Hint review: the queue of candidate hints; accept / reject / edit / merge by key; undo."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from re2llm_tui.kb import store as kb
from re2llm_tui.safe_text import text as safe
from re2llm_tui.store import changes
from re2llm_tui.tui import views
from re2llm_tui.tui.screens._base import WorkbenchScreen
from re2llm_tui.tui.screens._hints_common import HintActions, effect_text, hint_detail
from re2llm_tui.tui.widgets.app_header import AppHeader
from re2llm_tui.tui.widgets.footer import WorkbenchFooter


class HintReviewScreen(HintActions, WorkbenchScreen):
    DATA_SOURCES = (changes.KB,)
    AUTO_FOCUS = "#review-table"
    BINDINGS = [
        Binding("a", "accept", "Accept"),
        Binding("x", "reject", "Reject"),
        Binding("e", "edit", "Edit"),
        Binding("m", "merge", "Merge"),
        Binding("u", "undo", "Undo"),
        Binding("o", "open_session", "Session"),
        Binding("enter", "open", "Evidence", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield AppHeader("Hint review")
        yield Static("", id="review-summary")
        yield DataTable(id="review-table", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="review-detail-col"):
            yield Static("", id="review-detail")
        yield WorkbenchFooter()

    def on_mount(self) -> None:
        t = self.query_one(DataTable)
        t.add_column("id", key="id", width=4)
        t.add_column("session", key="session", width=11)
        t.add_column("rank w/o→w", key="effect", width=10)
        t.add_column("similar", key="similar", width=10)
        t.add_column("hint", key="text")
        self.reload()
        t.focus()

    def reload(self) -> None:
        db = self.app.db
        hints = self.app.kb(db).hints()
        self._queue = [h for h in hints if h.status == "candidate"]
        self._texts = views.hint_texts(hints)
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for h in self._queue:
            sim = f"#{h.similar_id} {h.similarity:.2f}" if h.similar_id is not None and \
                h.similarity is not None else ""
            table.add_row(str(h.id), h.session_id or "", effect_text(h.effect), sim, Text(h.text),
                          key=str(h.id))
        if self._queue:
            table.move_cursor(row=min(row, len(self._queue) - 1))
        n_acc = sum(h.status == "accepted" for h in hints)
        self.query_one("#review-summary", Static).update(safe(
            f"{len(self._queue)} candidate hint(s) awaiting a decision · {n_acc} accepted · "
            f"KB {self.app.kb(db).version()}"))
        self._detail()

    def selected_hint(self) -> kb.Hint | None:
        table = self.query_one(DataTable)
        if not self._queue or table.cursor_row >= len(self._queue):
            self.notify("no candidate hint selected", severity="warning", timeout=3)
            return None
        return self._queue[table.cursor_row]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail()

    def _detail(self) -> None:
        table = self.query_one(DataTable)
        out = self.query_one("#review-detail", Static)
        if not self._queue:
            out.update(Text("The queue is empty: reflect on missed sessions (sessions → f) to "
                            "propose hints.", style="dim"))
            return
        out.update(hint_detail(self._queue[min(table.cursor_row, len(self._queue) - 1)],
                               self._texts))

    def action_open_session(self) -> None:
        h = self.selected_hint()
        if h and h.session_id:
            from re2llm_tui.tui.screens.reflection import ReflectionScreen

            self.app.push_screen(ReflectionScreen(h.session_id))

    def palette_actions(self):
        return [("Review: accept selected hint", "", self.action_accept),
                ("Review: reject selected hint", "", self.action_reject),
                ("Review: edit selected hint", "", self.action_edit),
                ("Review: merge selected hint into another", "", self.action_merge),
                ("Review: show the reflection of the selected hint", "",
                 self.action_open_session),
                ("Review: open the selected hint's evidence", "", self.action_open)]
