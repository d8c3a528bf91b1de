"""Ask before a job pays for LLM calls: the cost preflight of a priced model's run.

:class:`CostConfirmDialog` shows an :class:`~re2llm_tui.costs.preflight.Estimate` (calls still
to pay after the cache, tokens, dollars, time -- the numbers ``--dry-run`` prints) and
returns True (y, or the Start button: start) or False (n / Esc, or Enter on the Cancel button,
which has the focus: nothing starts by accident).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from re2llm_tui.safe_text import text


def estimate_table(est):
    """The estimate's lines as a two-column Rich table (wrapped values stay in their
    column); every cell is data, shown as text."""
    from rich.table import Table

    t = Table(show_header=False, box=None, pad_edge=False, expand=True)
    t.add_column(style="bold", no_wrap=True)
    t.add_column(ratio=1)
    for label, value in est.rows():
        t.add_row(text(label), text(value))
    for note in est.notes:
        t.add_row(text("note"), text(note))
    return t


class CostConfirmDialog(ModalScreen[bool]):
    """The estimate of a run with a priced model; True starts it."""

    BINDINGS = [Binding("y", "start", "Start"),
                Binding("n,escape", "cancel", "Do not start")]

    def __init__(self, title: str, estimate) -> None:
        super().__init__()
        self.title_text = title
        self.estimate = estimate

    def compose(self) -> ComposeResult:
        est = self.estimate
        with Vertical(classes="dialog", id="cost-confirm"):
            yield Label(text(self.title_text, oneline=True), classes="dialog-title")
            with VerticalScroll(id="cost-estimate-scroll"):   # the buttons stay on screen
                yield Static(estimate_table(est), id="cost-estimate")
            cost = est.cost_text() + (
                f" at most, ~${est.expected_cost:.4f} expected"
                if est.expected_cost is not None and est.price_known and not est.is_local
                else "")
            yield Static(text(f"This run pays for up to {est.to_pay:,} LLM calls "
                              f"({cost}). y: start · n / Esc: cancel"),
                         classes="dialog-note")
            yield Horizontal(Button("Start (y)", id="ok", variant="primary"),
                             Button("Cancel (n)", id="cancel"), classes="dialog-buttons")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self.action_start()
        else:
            self.action_cancel()

    def action_start(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
