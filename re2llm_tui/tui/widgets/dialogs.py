"""Modal dialogs: edit a hint's text, merge hints, ask a path, pick a hint, confirm a run.

Each returns its result through ``dismiss``; Escape cancels (``None``).  A dialog that was
opened to retry after a failed save starts with the user's text, so nothing typed is lost.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from re2llm_tui.safe_text import text


class _Dialog(ModalScreen):
    BINDINGS = [Binding("escape", "cancel", "Cancel"),
                Binding("ctrl+s", "save", "Save", priority=True)]

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self.action_save()
        else:
            self.action_cancel()

    def _buttons(self, ok: str = "Save") -> Horizontal:
        return Horizontal(Button(f"{ok} (ctrl+s)", id="ok", variant="primary"),
                          Button("Cancel (esc)", id="cancel"), classes="dialog-buttons")


class TextEditDialog(_Dialog):
    """Edit (or write) a hint text; returns the new text, or None."""

    def __init__(self, title: str, text: str = "", note: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.text = text
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(text(self.title_text), classes="dialog-title")
            if self.note:
                yield Label(text(self.note), classes="dialog-note")
            yield TextArea(self.text, id="text", soft_wrap=True, show_line_numbers=False)
            yield self._buttons()

    def on_mount(self) -> None:
        self.query_one("#text", TextArea).focus()

    def action_save(self) -> None:
        self.dismiss(self.query_one("#text", TextArea).text)


class MergeDialog(_Dialog):
    """Merge a hint into another: returns (keep_id, merged text) or None."""

    def __init__(self, other_id: int, keep_id: int | None, keep_text: str, note: str = "",
                 texts: dict[int, str] | None = None, *, edited: bool = False) -> None:
        super().__init__()
        self.other_id = other_id
        self.keep_id = keep_id
        self.keep_text = keep_text
        self.note = note
        #: id -> text of the KB's hints: the text follows the id typed (until edited)
        self.texts = texts or {}
        #: the text was edited: typing another id no longer replaces it
        self._edited = edited

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Merge hint #{self.other_id} into hint #:", classes="dialog-title")
            yield Label(f"#{self.other_id} is archived; the kept hint gets the text below.")
            if self.note:
                yield Label(text(self.note), classes="dialog-note")
            yield Input(str(self.keep_id or ""), id="keep", placeholder="hint id to keep",
                        type="integer")
            yield TextArea(self.keep_text, id="text", soft_wrap=True, show_line_numbers=False)
            yield self._buttons("Merge")

    def on_mount(self) -> None:
        self.query_one("#keep", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        raw = event.value.strip()
        if self._edited or not raw.isdigit() or int(raw) not in self.texts:
            return
        area = self.query_one("#text", TextArea)
        area.text = self.texts[int(raw)]
        self.keep_text = area.text

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        if event.text_area.text != self.keep_text:
            self._edited = True

    def action_save(self) -> None:
        raw = self.query_one("#keep", Input).value.strip()
        if not raw.isdigit():
            self.notify("type the id of the hint to keep", severity="warning")
            return
        self.dismiss((int(raw), self.query_one("#text", TextArea).text))


class PathDialog(_Dialog):
    """Ask for a file path (import / export)."""

    def __init__(self, title: str, value: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog-small"):
            yield Label(text(self.title_text), classes="dialog-title")
            yield Input(self.value, id="path", placeholder="path to a hints.json file")
            yield self._buttons("OK")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_save()

    def action_save(self) -> None:
        value = self.query_one("#path", Input).value.strip()
        if value:
            self.dismiss(value)


class HintPickerDialog(_Dialog):
    """Pick an action of the agent: a hint id (0 = no hint); returns the id or None."""

    def __init__(self, hints: list[tuple[int, str]], title: str = "Recommend with which hint?") -> None:
        super().__init__()
        self.hints = hints
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(text(self.title_text), classes="dialog-title")
            yield OptionList(*[Option(f"#{i}  {t}" if i else "#0  (no hint)", id=str(i))
                               for i, t in self.hints], id="hints")
            yield self._buttons("Recommend")

    def on_mount(self) -> None:
        self.query_one("#hints", OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id))

    def action_save(self) -> None:
        ol = self.query_one("#hints", OptionList)
        if ol.highlighted is not None:
            self.dismiss(int(ol.get_option_at_index(ol.highlighted).id))


class ProposalDialog(ModalScreen):
    """The run proposed for the demo model: Enter starts it, f the full set, Esc cancels.

    Returns ``"proposed"``, ``"full"`` or None.
    """

    BINDINGS = [Binding("enter", "proposed", "Start proposed run", priority=True),
                Binding("f", "full", "Full set"),
                Binding("escape", "cancel", "Cancel")]

    def __init__(self, plan) -> None:
        super().__init__()
        self.plan = plan

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="proposal"):
            yield Label(text("Start a training run"), classes="dialog-title")
            yield Static(text("\n".join(self.plan.lines())), id="proposal-text")
            yield Static(text("Enter: start the proposed run · f: train on the full set "
                              "instead · Esc: cancel"), classes="dialog-note")
            yield Horizontal(Button("Start proposed (enter)", id="ok", variant="primary"),
                             Button("Full set (f)", id="full"),
                             Button("Cancel (esc)", id="cancel"), classes="dialog-buttons")

    def on_mount(self) -> None:
        self.query_one("#ok", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        {"ok": self.action_proposed, "full": self.action_full}.get(
            event.button.id, self.action_cancel)()

    def action_proposed(self) -> None:
        self.dismiss("proposed")

    def action_full(self) -> None:
        self.dismiss("full")

    def action_cancel(self) -> None:
        self.dismiss(None)
