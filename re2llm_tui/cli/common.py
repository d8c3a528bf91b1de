"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

Dataset = typer.Option("games", "--dataset", "-d", help="games (or game) / movies (or movie)")
Split = typer.Option("test", "--split", "-s", help="train / test")
DataDir = typer.Option(None, "--data-dir", help="release data folder (default: $RE2LLM_DATA, "
                       "then ../shared/datasets/re2llm-release, then ./data/re2llm-release)")
Db = typer.Option(None, "--db", help="workspace file (default: $RE2LLM_DB or ./kb.sqlite)")
Json = typer.Option(False, "--json", help="print JSON instead of a table")

OptPath = Optional[Path]
OptStr = Optional[str]


def console(stderr: bool = False):
    """A rich Console for lines whose markup the code owns (``[yellow]stopped:[/yellow]``).

    Data interpolated into such a line (a title, label, path, model name, message) goes
    through :func:`re2llm_tui.safe_text.escape`; tables take :func:`~re2llm_tui.safe_text.text`
    cells.  Emoji codes (``:fire:``) are never replaced: they could come from data.
    """
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, emoji=False)
