"""Session detail: history, candidates (target marked), stored rankings side by side.

Opened from a hint's evidence or the reward table (``reward_hint``), ranking A is the
reward table's no-hint outcome and ranking B that hint's, of the same model and context.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Select, Static

from re2llm_tui.store import changes, reflections, runs
from re2llm_tui.tui import views
from re2llm_tui.tui.screens._base import WorkbenchScreen
from re2llm_tui.tui.widgets.app_header import AppHeader
from re2llm_tui.tui.widgets.footer import WorkbenchFooter
from re2llm_tui.tui.widgets.ranking import CandidatesView, HistoryView, RankingView


class SessionDetailScreen(WorkbenchScreen):
    DATA_SOURCES = (changes.RUNS, changes.REFLECTIONS)
    BINDINGS = [
        Binding("escape,backspace", "back", "Back"),
        Binding("r", "recommend", "Recommend"),
        Binding("h", "recommend_hint", "With hint"),
        Binding("f", "reflect", "Reflect"),
        Binding("v", "view_reflection", "Reflections"),
        Binding("t", "toggle_reasoning", "Think"),
    ]

    def __init__(self, session_id: str, reward_hint: dict | None = None) -> None:
        super().__init__()
        self.session_id = session_id
        #: {"model", "context", "hint_id", "hint_key"}: show that hint's reward-table
        #: ranking beside the no-hint one (from a hint's evidence or the reward table)
        self.reward_hint = reward_hint
        self._others: list[views.StoredRanking] = []
        self._chosen_b: int | None = -2 if reward_hint else None
        #: t: show the reasoning model's thinking behind rankings A and B
        self.show_reasoning = False

    def compose(self) -> ComposeResult:
        yield AppHeader(f"Session {self.session_id}")
        yield Static("", id="detail-title")
        with Horizontal(id="detail-body"):
            with VerticalScroll(id="detail-left"):
                yield HistoryView(id="history")
                yield CandidatesView(id="candidates")
            with Vertical(id="detail-right"):
                yield Select([], prompt="ranking B: choose a run", id="run-b",
                             allow_blank=True)
                with Horizontal(id="rankings"):
                    with VerticalScroll(classes="ranking-col"):
                        yield RankingView(id="ranking-a")
                    with VerticalScroll(classes="ranking-col"):
                        yield RankingView(id="ranking-b")
                with VerticalScroll(id="thinking-col"):
                    yield Static("", id="thinking")
        yield WorkbenchFooter()

    def on_mount(self) -> None:
        self.session = self.app.session(self.session_id)
        self.query_one("#history", HistoryView).show(self.session.history)
        self.reload()

    def reload(self) -> None:
        s = self.session
        db, dataset = self.app.db, self.app.config.dataset
        rankings = views.stored_rankings(runs.session_outcomes(db, dataset, s.id))
        base, others = views.split_baseline_hinted(rankings)
        if self.reward_hint:
            rbase, rhint = _reward_rankings(db, dataset, s.id, self.reward_hint)
            base = rbase or base
            others = ([rhint] if rhint else []) + others
            rankings = [r for r in (rbase, rhint) if r] + rankings
        self._base = base
        self._others = others
        n_refl = len(reflections.reflections_of(db, dataset, s.id))
        self.query_one("#detail-title", Static).update(
            f"[b]{_esc(s.id)}[/b] · target [b green]{_esc(s.target)}[/] (candidate "
            f"{s.target_index + 1}) · {len(rankings)} stored ranking(s) · "
            f"{n_refl} reflection(s)")
        select = self.query_one("#run-b", Select)
        options = [(r.label, r.run_id) for r in others]
        with select.prevent(Select.Changed):
            select.set_options(options)
            if options:
                keep = self._chosen_b if self._chosen_b in [o[1] for o in options] else \
                    options[0][1]
                select.value = keep
                self._chosen_b = keep
        self._show()

    def _show(self) -> None:
        s = self.session
        a = self.query_one("#ranking-a", RankingView)
        b = self.query_one("#ranking-b", RankingView)
        marks: dict[int, str] = {}
        if self._base is not None:
            a.show("A · without hint", self._base, s.candidates, s.target_index)
            for idx in self._base.ranking[:10]:
                marks[idx] = "A"
        else:
            a.show_empty("A · without hint", "no stored ranking without a hint: press r")
        chosen = next((r for r in self._others if r.run_id == self._chosen_b), None)
        if chosen is not None:
            b.show("B · with hint / agent", chosen, s.candidates, s.target_index)
            for idx in chosen.ranking[:10]:
                marks[idx] = marks.get(idx, "") + "B"
        else:
            b.show_empty("B · with hint / agent",
                         "no hinted ranking yet: press h to recommend with a hint")
        self.query_one("#candidates", CandidatesView).show(s.candidates, s.target_index, marks)
        self._show_reasoning(self._base, chosen)

    def _show_reasoning(self, a, b) -> None:
        """The thinking behind rankings A and B (t toggles it), escaped, muted."""
        from rich.text import Text

        col = self.query_one("#thinking-col")
        col.display = self.show_reasoning
        if not self.show_reasoning:
            return
        t = Text()
        for name, r in (("A", a), ("B", b)):
            thinking = runs.call_reasoning(self.app.db, r.call_id) if r is not None else ""
            t.append(f"{name} · thinking: ", style="bold")
            t.append((thinking.strip() or "(none stored: not a reasoning model, or no call)")
                     + "\n", style="dim" if thinking else "italic dim")
        self.query_one("#thinking", Static).update(t)

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "run-b" and event.value is not Select.BLANK:
            self._chosen_b = event.value
            self._show()

    # ----------------------------------------------------------------- actions
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_recommend(self) -> None:
        self.app.recommend(self.session_id)

    def action_recommend_hint(self) -> None:
        from re2llm_tui.tui.widgets.dialogs import HintPickerDialog

        _, actions = self.app.kb().actions()

        def picked(hint_id: int | None) -> None:
            if hint_id is not None:
                self.app.recommend(self.session_id, hint_id)

        self.app.push_screen(HintPickerDialog(actions), picked)

    def action_reflect(self) -> None:
        self.app.reflect(self.session_id)

    def action_toggle_reasoning(self) -> None:
        self.show_reasoning = not self.show_reasoning
        self._show()

    def action_view_reflection(self) -> None:
        from re2llm_tui.tui.screens.reflection import ReflectionScreen

        self.app.push_screen(ReflectionScreen(self.session_id))

    def palette_actions(self):
        sid = self.session_id
        return [(f"Recommend {sid} without hint", "run the LLM on this session",
                 self.action_recommend),
                (f"Recommend {sid} with a hint", "pick a hint of the KB",
                 self.action_recommend_hint),
                (f"Reflect on {sid}", "Reflective Exploration of this session",
                 self.action_reflect),
                (f"Show reflections of {sid}", "transcripts and hint checks",
                 self.action_view_reflection),
                ("Back to sessions", "", self.action_back)]


def _reward_rankings(db, dataset: str, session_id: str, hint: dict):
    """The reward table's no-hint and hinted outcomes of ``session_id`` as stored rankings
    (run ids -1 / -2: they are not runs)."""
    from re2llm_tui.store import outcomes

    def one(key: str, run_id: int, label: str, hint_id):
        o = outcomes.outcome(db, dataset, hint["model"], hint["context"], session_id, key)
        if o is None:
            return None
        return views.StoredRanking(run_id=run_id, label=label, kind="reward", hint_id=hint_id,
                                   hint_text=hint.get("text") if hint_id else None, ranking=o["ranking"], hallucinations=[],
                                   target_rank=o["target_rank"], reply=None, error=None)

    return (one("", -1, f"reward table · no hint · {hint['model']}", None),
            one(hint["hint_key"], -2, f"reward table · hint #{hint['hint_id']} · "
                                      f"{hint['model']}", hint["hint_id"]))


def _esc(text: str) -> str:
    from re2llm_tui.safe_text import escape

    return escape(text, oneline=True)
