"""Help: every key of the app and of each screen, read from their bindings.

The app hands over its key table (:meth:`~re2llm_tui.tui.app.Re2LLMApp.key_groups`) when it
pushes this screen: the help imports neither the app nor the other screens.
"""

from __future__ import annotations

from collections.abc import Sequence

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


KeyGroups = Sequence[tuple[str, Sequence]]


def keys_table(groups: KeyGroups) -> Table:
    """One row per binding of each (where, bindings) group, in order."""
    table = Table(title="Keys", expand=True, show_lines=False)
    table.add_column("where", style="bold")
    table.add_column("key", style="cyan")
    table.add_column("action")
    for name, bindings in groups:
        first = True
        for b in bindings:
            if not isinstance(b, Binding):
                continue
            desc = b.description or b.action.replace("_", " ")
            table.add_row(name if first else "", _key(b), desc)
            first = False
    table.add_row("everywhere", "ctrl+p", "command palette: every action by name")
    return table


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close")]

    def __init__(self, groups: KeyGroups) -> None:
        super().__init__()
        self.groups = groups

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(keys_table(self.groups), id="help-keys")
            yield Static("Esc closes this help. Long work (recommend, reflect, evaluate) runs "
                         "in the background; training runs in its own process. Errors appear "
                         "as notifications.", id="help-note")

    def action_close(self) -> None:
        self.dismiss()
