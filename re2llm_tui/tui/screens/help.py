"""Help: every key of the app and of each screen, read from their bindings."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def _key(b: Binding) -> str:
    if b.key_display:
        return b.key_display
    return ", ".join({"question_mark": "?", "slash": "/"}.get(k, k) for k in b.key.split(","))


def keys_table() -> Table:
    from re2llm_tui.tui.app import Re2LLMApp
    from re2llm_tui.tui.screens.evaluation import EvaluationScreen
    from re2llm_tui.tui.screens.hint_review import HintReviewScreen
    from re2llm_tui.tui.screens.knowledge_base import KnowledgeBaseScreen
    from re2llm_tui.tui.screens.reflection import ReflectionScreen
    from re2llm_tui.tui.screens.session_detail import SessionDetailScreen
    from re2llm_tui.tui.screens.sessions import SessionsScreen
    from re2llm_tui.tui.screens.training import TrainingScreen

    table = Table(title="Keys", expand=True, show_lines=False)
    table.add_column("where", style="bold")
    table.add_column("key", style="cyan")
    table.add_column("action")
    groups = [("everywhere", Re2LLMApp), ("sessions", SessionsScreen),
              ("session detail", SessionDetailScreen), ("reflection", ReflectionScreen),
              ("hint review", HintReviewScreen), ("knowledge base", KnowledgeBaseScreen),
              ("training", TrainingScreen), ("evaluation", EvaluationScreen)]
    for name, cls in groups:
        first = True
        for b in cls.BINDINGS:
            if not isinstance(b, Binding):
                continue
            desc = b.description or b.action.replace("_", " ")
            table.add_row(name if first else "", _key(b), desc)
            first = False
    table.add_row("everywhere", "ctrl+p", "command palette: every action by name")
    return table


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(keys_table(), id="help-keys")
            yield Static("Esc closes this help. Long work (recommend, reflect, evaluate) runs "
                         "in the background; training runs in its own process. Errors appear "
                         "as notifications.", id="help-note")

    def action_close(self) -> None:
        self.dismiss()
