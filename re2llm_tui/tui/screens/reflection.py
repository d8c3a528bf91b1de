"""Reflection: each turn's transcript, the hints produced and each hint's check results."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Select, Static

from re2llm_tui.store import changes, reflections
from re2llm_tui.tui import views
from re2llm_tui.tui.screens._base import WorkbenchScreen
from re2llm_tui.tui.widgets.app_header import AppHeader
from re2llm_tui.tui.widgets.footer import WorkbenchFooter

TURN_NAMES = {"recommend": "1 · recommendation", "mistakes": "2 · possible mistakes",
              "analysis": "3 · why the target was missed", "hints": "4 · hints",
              "effect": "check · effectiveness", "redundancy": "check · redundancy"}
VERDICT_STYLE = {"added": "bold green", "leak": "bold red", "ineffective": "yellow",
                 "redundant": "magenta", "duplicate": "magenta", "stopped": "dim"}


class ReflectionScreen(WorkbenchScreen):
    DATA_SOURCES = (changes.REFLECTIONS, changes.KB)
    AUTO_FOCUS = "#refl-hints"
    BINDINGS = [Binding("escape,backspace", "back", "Back"),
                Binding("f", "reflect", "Reflect again"),
                Binding("t", "toggle_reasoning", "Think")]

    def __init__(self, session_id: str) -> None:
        super().__init__()
        self.session_id = session_id
        self.reflection_id: int | None = None
        #: t: show each assistant turn's thinking (a reasoning model's, from its call)
        self.show_reasoning = False

    def compose(self) -> ComposeResult:
        yield AppHeader(f"Reflection · {self.session_id}")
        yield Select([], prompt="reflection", id="reflection-pick", allow_blank=True)
        with Horizontal(id="reflection-body"):
            with VerticalScroll(id="transcript-col"):
                yield Static("", id="transcript")
            with Vertical(id="refl-hints-col"):
                yield DataTable(id="refl-hints", cursor_type="row")
                with VerticalScroll(id="refl-hint-detail-col"):
                    yield Static("", id="refl-hint-detail")
        yield WorkbenchFooter()

    def on_mount(self) -> None:
        t = self.query_one("#refl-hints", DataTable)
        t.add_column("#", key="idx", width=2)
        t.add_column("verdict", key="verdict", width=11)
        t.add_column("rank w/o→w", key="rank", width=10)
        t.add_column("NDCG w/o→w", key="ndcg", width=11)
        t.add_column("similar", key="sim", width=10)
        t.add_column("hint", key="text")
        self.reload()

    def reload(self) -> None:
        refl = reflections.reflections_of(self.app.db, self.app.config.dataset,
                                          self.session_id)
        sel = self.query_one("#reflection-pick", Select)
        opts = [(f"#{r['id']} {r['status']} · {r['model']} · {r['n_proposed']} proposed, "
                 f"{r['n_added']} added", r["id"]) for r in refl]
        with sel.prevent(Select.Changed):
            sel.set_options(opts)
            if opts:
                if self.reflection_id not in [o[1] for o in opts]:
                    self.reflection_id = opts[-1][1]
                sel.value = self.reflection_id
        self._show()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.value is not Select.BLANK:
            self.reflection_id = event.value
            self._show()

    def _show(self) -> None:
        transcript = self.query_one("#transcript", Static)
        table = self.query_one("#refl-hints", DataTable)
        table.clear()
        if self.reflection_id is None:
            transcript.update(Text(f"No reflection of {self.session_id} yet: press f to run "
                                   "one (the baseline must miss the target).", style="dim"))
            self.query_one("#refl-hint-detail", Static).update("")
            return
        db = self.app.db
        t = Text()
        last = None
        for turn in reflections.reflection_turns(db, self.reflection_id):
            head = TURN_NAMES.get(turn["kind"], turn["kind"])
            if turn.get("proposal"):
                head += f" (hint {turn['proposal']})"
            if head != last:
                t.append(f"\n── {head} ──\n", style="bold cyan")
                last = head
            t.append(f"{turn['role']}: ", style="bold" if turn["role"] == "assistant" else "dim")
            t.append(turn["content"].strip() + "\n")
            if self.show_reasoning and turn["role"] == "assistant":
                from re2llm_tui.store.runs import call_reasoning

                thinking = call_reasoning(db, turn.get("call_id")).strip()
                t.append("  thinking: ", style="bold dim")
                t.append((thinking or "(none stored)") + "\n", style="dim italic")
        if not t.plain.strip():
            t.append("(no turns stored)", style="dim")
        transcript.update(t)
        self._hints = reflections.reflection_hints(db, self.reflection_id)
        self._texts = views.hint_texts(self.app.kb(db).hints())
        for h in self._hints:
            rank = f"{_r(h['rank_without'])}→{_r(h['rank_with'])}"
            ndcg = (f"{h['ndcg_without']:.2f}→{h['ndcg_with']:.2f}"
                    if h["ndcg_without"] is not None and h["ndcg_with"] is not None else "")
            sim = (f"#{h['similar_id']} {h['similarity']:.2f}" if h["similar_id"] is not None
                   and h["similarity"] is not None else "")
            table.add_row(str(h["idx"]), Text(h["verdict"], style=VERDICT_STYLE.get(
                h["verdict"], "")), rank, ndcg, sim, Text(h["text"]), key=str(h["idx"]))
        self._detail(0)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail(event.cursor_row)

    def _detail(self, i: int) -> None:
        out = self.query_one("#refl-hint-detail", Static)
        if not getattr(self, "_hints", None) or i >= len(self._hints):
            out.update("")
            return
        h = self._hints[i]
        t = Text()
        t.append(f"hint {h['idx']}: ", style="bold")
        t.append(h["text"] + "\n")
        t.append("verdict: ", style="bold")
        t.append(h["verdict"] + "\n", style=VERDICT_STYLE.get(h["verdict"], ""))
        t.append("leak: ", style="bold")
        t.append((f"names {h['leak']!r}" if h["leak"] else "none") + "\n")
        t.append("effectiveness: ", style="bold")
        t.append(f"target rank {_r(h['rank_without'])} without → {_r(h['rank_with'])} with\n")
        t.append("redundancy: ", style="bold")
        if h["similar_id"] is not None:
            t.append(f"most similar #{h['similar_id']} (cosine {h['similarity'] or 0:.2f}): ")
            t.append(self._texts.get(h["similar_id"], "(deleted)") + "\n", style="italic")
        else:
            t.append("no similar hint\n")
        if h.get("llm_similar_id") is not None:
            t.append(f"LLM judged it similar to #{h['llm_similar_id']}\n")
        if h.get("hint_id") is not None:
            t.append(f"stored as candidate hint #{h['hint_id']}", style="green")
        out.update(t)

    def action_toggle_reasoning(self) -> None:
        self.show_reasoning = not self.show_reasoning
        self._show()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_reflect(self) -> None:
        self.app.reflect(self.session_id)


def _r(rank) -> str:
    return "—" if rank is None else str(rank)
