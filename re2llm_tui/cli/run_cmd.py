"""``re2llm-tui run``: open the Textual workbench (Textual is imported only here, when run)."""

from __future__ import annotations

import typer

from .common import DataDir, Dataset, Db, OptPath, OptStr


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""

    @app.command("run")
    def run(dataset: str = Dataset,
            model: OptStr = typer.Option(None, "--model", "-m",
                                         help="litellm model string (default: $RE2LLM_MODEL, "
                                              "else the embedded 135M demo model)"),
            db: OptPath = Db,
            data_dir: OptPath = DataDir,
            split: str = typer.Option("train", "--split", "-s",
                                      help="split browsed on the sessions screen")) -> None:
        """Open the workbench: sessions, recommendations, reflections, hints, training, evaluation."""
        from ..datasets import SPLITS
        from ..errors import DataError, UserError

        if split not in SPLITS:
            raise UserError(f"unknown split {split!r}: choose train or test")
        try:
            from ..tui.app import make_app, run_app

            tui = make_app(dataset, model=model, db=db, data_dir=data_dir, split=split)
        except DataError as exc:
            raise UserError(str(exc)) from None
        run_app(tui)
