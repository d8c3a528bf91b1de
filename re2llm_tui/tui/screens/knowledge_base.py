"""Knowledge base: every hint with status, source, provenance, agent usage, mean reward and
the evidence's badges (suggestions: hurts, no effect, acts like #k, unused; ``b`` filters by
them, the detail pane says why); Enter opens the hint's detail and evidence.  Mean rewards and
badges read the train split's outcomes only (the test split's are held out for evaluation;
the detail pane says how many were left out)."""

from __future__ import annotations

import re

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Input, Static

from re2llm_tui.kb import store as kb
from re2llm_tui.safe_text import text as safe
from re2llm_tui.store import changes
from re2llm_tui.tui import views
from re2llm_tui.tui.screens._base import WorkbenchScreen
from re2llm_tui.tui.screens._hints_common import STATUS_STYLE, HintActions, hint_detail
from re2llm_tui.tui.widgets.app_header import AppHeader
from re2llm_tui.tui.widgets.footer import WorkbenchFooter


class KnowledgeBaseScreen(HintActions, WorkbenchScreen):
    DATA_SOURCES = (changes.KB,)
    AUTO_FOCUS = "#kb-table"
    BINDINGS = [
        Binding("n", "add", "Add"),
        Binding("e", "edit", "Edit"),
        Binding("d", "delete", "Delete"),
        Binding("a", "accept", "Accept"),
        Binding("x", "reject", "Reject"),
        Binding("m", "merge", "Merge", show=False),
        Binding("u", "undo", "Undo"),
        Binding("slash", "search", "Search", key_display="/"),
        # import / export: in the help (?) and the palette; the footer keeps q Quit at 100 cols
        Binding("i", "import", "Import", show=False),
        Binding("o", "export", "Export", show=False),
        Binding("escape", "clear_search", "Clear", show=False),
        Binding("b", "badge_filter", "Badge filter", show=False),
        Binding("enter", "open", "Open", show=False),
    ]
    #: what ``b`` cycles through: every hint, those with any badge, then one badge each
    BADGE_FILTERS = (None, "any", "hurts", "no effect", "acts like", "unused")

    def __init__(self) -> None:
        super().__init__()
        self.search_text = ""
        self._hints: list[kb.Hint] = []
        self._snippets: list[str] | None = None
        self._hint_stats: dict = {}
        self._agent_use = None
        self._stats_version: tuple | None = None
        self._badges: dict[int, list] = {}
        self._left_out = ""                 # the evidence's outcomes left out, in words
        self._every: list[kb.Hint] = []
        self.badge_filter: str | None = None

    def compose(self) -> ComposeResult:
        yield AppHeader("Knowledge base")
        with Horizontal(id="kb-bar"):
            yield Input(placeholder="/ full-text search of hints", id="kb-search")
            yield Static("", id="kb-summary")
        yield DataTable(id="kb-table", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="kb-detail-col"):
            yield Static("", id="kb-detail")
        yield WorkbenchFooter()

    def on_mount(self) -> None:
        t = self.query_one(DataTable)
        t.add_column("id", key="id", width=4)
        t.add_column("status", key="status", width=9)
        t.add_column("source", key="source", width=10)
        t.add_column("provenance", key="prov", width=11)
        t.add_column("agent use", key="use", width=9)
        t.add_column("reward", key="reward", width=7)
        t.add_column("badges", key="badges", width=16)
        t.add_column("hint", key="text")
        self.reload()
        t.focus()

    def _stats(self) -> None:
        """Mean reward (reward table) and agent use (latest finished training run) of the
        listed hints; ``self._stats_version`` tells :meth:`on_resumed` when to redo it."""
        from re2llm_tui.kb import hint_stats

        self._stats_version = self._data_version()
        try:
            self._hint_stats, self._agent_use = hint_stats.hint_stats(
                self.app.db, self.app.config.dataset, [(h.id, h.text) for h in self._hints],
                model=self.app.config.model, split="train")
        except Exception as exc:  # a reader failing must not take the screen down
            self.notify(f"hint statistics unavailable: {exc}", severity="warning", timeout=4)
            self._hint_stats, self._agent_use = {}, None
        self._badges = self._compute_badges()

    def _compute_badges(self) -> dict[int, list]:
        """The evidence's badges of every hint (compared with all of them); none without a
        reward table of the app's model."""
        from re2llm_tui.kb import evidence

        self._left_out = ""
        try:
            report = evidence.compute(self.app.db, self.app.config.dataset, self._every,
                                      model=self.app.config.model, split="train")
        except evidence.NoRewardTable:
            return {}
        except Exception as exc:  # a reader failing must not take the screen down
            self.notify(f"hint badges unavailable: {exc}", severity="warning", timeout=4)
            return {}
        self._left_out = report.left_out_line()
        return {hid: ev.badges for hid, ev in report.evidence.items() if ev.badges}

    def _badge_cell(self, hint_id: int) -> Text:
        from re2llm_tui.tui.screens.hint_detail import badge_text

        return badge_text(self._badges.get(hint_id, []))

    def _data_version(self) -> tuple:
        """Changes whenever a reward is stored or a training run finishes (cheap to read)."""
        try:
            return changes.change_key(self.app.db, (changes.REWARDS, changes.TRAIN_RUNS))
        except Exception:
            return ()

    def _stat_cells(self, hint_id: int) -> tuple[str, str]:
        st = self._hint_stats.get(hint_id)
        use = "—" if st is None or st.agent_share is None else f"{st.agent_share:.0%}"
        reward = "—" if st is None or st.mean_reward is None else f"{st.mean_reward:+.3f}"
        return use, reward

    def on_resumed(self) -> None:
        """Back on this screen: refresh the two statistics columns only if their data
        changed meanwhile (no repopulation of the table otherwise)."""
        if self._data_version() == self._stats_version:
            return
        if self.badge_filter is not None:       # the rows themselves may change
            self.reload()
            return
        self._stats()
        table = self.query_one(DataTable)
        for h in self._hints:
            use, reward = self._stat_cells(h.id)
            table.update_cell(str(h.id), "use", use)
            table.update_cell(str(h.id), "reward", reward)
            table.update_cell(str(h.id), "badges", self._badge_cell(h.id))
        self._detail()

    def reload(self) -> None:
        knowledge = self.app.kb()
        every = knowledge.hints()
        self._every = every
        self._texts = views.hint_texts(every)
        if self.search_text:
            try:
                found = knowledge.search(self.search_text)
            except Exception as exc:
                self.app.notify(str(exc), severity="error")
                found = []
            self._hints = [h for h, _ in found]
            self._snippets = [s for _, s in found]
        else:
            self._hints = every
            self._snippets = None
        self._stats()
        if self.badge_filter is not None:
            keep = [i for i, h in enumerate(self._hints) if self._has_badge(h.id)]
            self._hints = [self._hints[i] for i in keep]
            if self._snippets is not None:
                self._snippets = [self._snippets[i] for i in keep]
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for i, h in enumerate(self._hints):
            prov = h.session_id or ("release" if h.source == "release" else "")
            use, reward = self._stat_cells(h.id)
            text = _snippet(self._snippets[i]) if self._snippets else Text(h.text)
            table.add_row(str(h.id), Text(h.status, style=STATUS_STYLE.get(h.status, "")),
                          h.source, prov, use, reward, self._badge_cell(h.id), text,
                          key=str(h.id))
        if self._hints:
            table.move_cursor(row=min(row, len(self._hints) - 1))
        self._summary()
        self._detail()

    def _summary(self) -> None:
        db = self.app.db
        counts = {s: sum(h.status == s for h in self._hints) for s in kb.STATUSES}
        what = f"search {self.search_text!r}: " if self.search_text else ""
        if self.badge_filter is not None:
            what = f"badge {self.badge_filter}: " + what
        self.query_one("#kb-summary", Static).update(safe(
            what + ", ".join(f"{n} {s}" for s, n in counts.items() if n) +
            f" · {self.app.kb(db).version()} (rev {self.app.kb(db).revision()})",
            oneline=True))

    def selected_hint(self) -> kb.Hint | None:
        table = self.query_one(DataTable)
        if not self._hints or table.cursor_row >= len(self._hints):
            self.notify("no hint selected", severity="warning", timeout=3)
            return None
        return self._hints[table.cursor_row]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail()

    def _has_badge(self, hint_id: int) -> bool:
        badges = self._badges.get(hint_id, [])
        if self.badge_filter == "any":
            return bool(badges)
        return any(b.kind == self.badge_filter for b in badges)

    def action_badge_filter(self) -> None:
        """Cycle the badge filter: all hints, any badge, then each badge."""
        i = self.BADGE_FILTERS.index(self.badge_filter)
        self.badge_filter = self.BADGE_FILTERS[(i + 1) % len(self.BADGE_FILTERS)]
        self.reload()
        shown = "every hint" if self.badge_filter is None else \
            f"hints with badge: {self.badge_filter} ({len(self._hints)})"
        self.app.notify(shown, title="badge filter", timeout=3)

    def _detail(self) -> None:
        out = self.query_one("#kb-detail", Static)
        table = self.query_one(DataTable)
        if not self._hints:
            out.update(Text("no hints match", style="dim"))
            return
        h = self._hints[min(table.cursor_row, len(self._hints) - 1)]
        text = hint_detail(h, self._texts)
        text.append_text(self._stats_line(h.id))
        badges = self._badges.get(h.id)
        if badges:
            from re2llm_tui.tui.screens.hint_detail import badge_text

            text.append("suggestions from the train split (never applied; Enter shows the "
                        "evidence):\n", style="bold")
            text.append_text(badge_text(badges, why=True))
        out.update(text)

    def _stats_line(self, hint_id: int) -> Text:
        """Where the two statistics columns come from, for the selected hint."""
        st, use = self._hint_stats.get(hint_id), self._agent_use
        t = Text()
        t.append("mean reward (train split): ", style="bold")
        if st is None or st.mean_reward is None:
            t.append("none stored for this text", style="dim")
        else:
            t.append(f"{st.mean_reward:+.3f} NDCG@10 over {st.n_rewards} session(s)")
        t.append(" · agent use: ", style="bold")
        if use is None:
            t.append("no finished training run", style="dim")
        else:
            share = "not an action" if st is None or st.agent_share is None \
                else f"{st.agent_share:.0%}"
            how = "argmax choices" if use.source == "greedy" else "last sampled window"
            t.append(f"{share} of training run #{use.run_id}'s {how} (step {use.step})")
        t.append("\n")
        if self._left_out:
            t.append(f"evidence: train split · {self._left_out}\n", style="dim")
        return t

    # ----------------------------------------------------------------- actions
    def action_search(self) -> None:
        self.query_one("#kb-search", Input).focus()

    def action_clear_search(self) -> None:
        self.query_one("#kb-search", Input).value = ""
        self.search_text = ""
        self.reload()
        self.query_one(DataTable).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.search_text = event.value.strip()
        self.reload()
        self.query_one(DataTable).focus()

    def action_add(self, text: str = "") -> None:
        from re2llm_tui.tui.widgets.dialogs import TextEditDialog

        def done(new: str | None) -> None:
            if new is None:
                return

            def retry(exc: Exception) -> None:
                self.app.push_screen(TextEditDialog("Add a hint (accepted, source manual)", new,
                                                    note=f"not added: {exc}"), done)

            def _add(db):
                h = self.app.kb(db).add(new, status="accepted", source="manual")
                return f"added #{h.id}", [h.id]

            self.app.kb_change(_add, "add", on_error=retry)

        self.app.push_screen(TextEditDialog("Add a hint (accepted, source manual)", text), done)

    def action_import(self) -> None:
        from re2llm_tui.tui.widgets.dialogs import PathDialog

        def done(path: str | None) -> None:
            if path:
                def _imp(db):
                    rep = self.app.kb(db).import_file(path)
                    return (f"imported {len(rep.added)} hint(s), skipped {len(rep.skipped)}",
                            rep.added)
                self.app.kb_change(_imp, "import")

        self.app.push_screen(PathDialog("Import a hints.json (accepted, duplicates skipped)"),
                             done)

    def action_export(self) -> None:
        from re2llm_tui.tui.widgets.dialogs import PathDialog

        def done(path: str | None) -> None:
            if path:
                def _export(db):
                    n = self.app.kb(db).export(path)
                    return f"exported {n} accepted hints to {path}", []

                self.app.kb_change(_export, "export")

        self.app.push_screen(PathDialog("Export accepted hints to (hints.json format)",
                                        f"hints-{self.app.config.dataset}.json"), done)

    def palette_actions(self):
        return [("KB: add a hint", "", self.action_add),
                ("KB: edit selected hint", "", self.action_edit),
                ("KB: delete selected hint", "undo brings it back", self.action_delete),
                ("KB: accept selected hint", "", self.action_accept),
                ("KB: reject selected hint", "", self.action_reject),
                ("KB: merge selected hint into another", "", self.action_merge),
                ("KB: search", "full-text search", self.action_search),
                ("KB: open the selected hint's evidence", "", self.action_open),
                ("KB: filter by badge", "cycles: any, hurts, no effect, acts like, unused",
                 self.action_badge_filter),
                ("KB: import hints.json", "", self.action_import),
                ("KB: export hints.json", "", self.action_export)]


def _snippet(snip: str) -> Text:
    out = Text()
    for i, part in enumerate(re.split(r"[\x02\x03]", snip)):
        out.append(part, style="bold reverse" if i % 2 else "")
    return out
