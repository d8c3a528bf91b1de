"""The ``re2llm-tui`` command line: a thin Typer layer over the core library.

Each command group lives in its own module and registers itself on :data:`app`.  Nothing
heavy (torch, litellm, textual) is imported here: commands import what they need when they
run, so ``re2llm-tui --help`` starts fast.
"""

from __future__ import annotations

import sys

import typer

from ..errors import UserError
from . import data_cmd, kb_cmd, llm_cmd, reflect_cmd, run_cmd, score_cmd, train_cmd

app = typer.Typer(
    name="re2llm-tui",
    help="Re2LLM workbench: reflective hints + a PPO hint-retrieval agent for LLM "
         "session-based recommendation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in (run_cmd, data_cmd, score_cmd, llm_cmd, kb_cmd, reflect_cmd, train_cmd):
    _module.register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point: a :class:`UserError` becomes one line on stderr and exit code 2."""
    try:
        rv = app(args=argv, standalone_mode=False)
    except UserError as exc:
        print(f"re2llm-tui: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("re2llm-tui: interrupted (finished work is saved; rerun to resume)", file=sys.stderr)
        return 130
    except SystemExit as exc:  # typer.Exit and click's usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception as exc:  # click usage errors in standalone_mode=False
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            print("re2llm-tui: aborted", file=sys.stderr)
            return 1
        raise
    # standalone_mode=False: click returns a typer.Exit's code instead of raising it
    return rv if isinstance(rv, int) else 0


def entry() -> None:  # console script
    sys.exit(main())
