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
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)
