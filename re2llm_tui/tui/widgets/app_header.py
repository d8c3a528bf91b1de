"""The two-line header: dataset/split, model (demo model clearly marked) and workspace; then
the screens with their keys, the current one highlighted."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

NAV = (("1", "Sessions", "sessions"), ("2", "Review", "review"), ("3", "KB", "kb"),
       ("4", "Training", "training"), ("5", "Evaluation", "evaluation"), ("6", "Runs", "runs"))


class AppHeader(Static):
    DEFAULT_CSS = """
    AppHeader {
        dock: top;
        height: 2;
        background: $panel;
        color: $text;
        padding: 0 1;
    }
    """

    def __init__(self, screen_title: str = "", **kw) -> None:
        super().__init__("", **kw)
        self.screen_title = screen_title

    def on_mount(self) -> None:
        self.refresh_info()

    def refresh_info(self) -> None:
        self.update(self.app.header_text(self.screen_title))


def header_text(screen_title: str, dataset: str, split: str, model: str, demo: bool,
                workspace: str, mode: str = "") -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append("re2llm-tui", style="bold")
    t.append(f" │ {dataset}/{split}", style="bold")
    t.append(" │ model ")
    t.append(model, style="bold")
    if demo:
        t.append(" ")
        t.append(" DEMO 135M ", style="bold black on yellow")
    t.append(" │ db ")
    t.append(workspace, style="bold")
    t.append("\n")
    for key, name, m in NAV:
        style = "bold reverse" if m == mode else ""
        t.append(f" {key} ", style="bold cyan")
        t.append(name, style=style)
        t.append(" ")
    if screen_title:
        t.append(" › ", style="dim")
        t.append(screen_title, style="bold")
    return t
