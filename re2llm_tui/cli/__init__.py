"""The ``re2llm-tui`` command line: a thin Typer layer over the core library.

Each command group lives in its own module and registers itself on :data:`app`.  Nothing
heavy (torch, litellm, textual) is imported here: commands import what they need when they
run, so ``re2llm-tui --help`` starts fast.
"""

from __future__ import annotations

import os
import sys

import typer
import typer.main

from re2llm_tui.cli import (
    data_cmd,
    kb_cmd,
    llm_cmd,
    reflect_cmd,
    rewards_cmd,
    run_cmd,
    runs_cmd,
    score_cmd,
    train_cmd,
)
from re2llm_tui.errors import UserError

app = typer.Typer(
    name="re2llm-tui",
    help="Re2LLM workbench: reflective hints + a PPO hint-retrieval agent for LLM "
         "session-based recommendation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in (run_cmd, data_cmd, score_cmd, llm_cmd, kb_cmd, reflect_cmd, train_cmd,
                runs_cmd, rewards_cmd):
    _module.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure is a short message on stderr and an exit code, never a
    traceback:

    * a :class:`UserError`: one line, exit 2 (its ``exit_code``);
    * a usage error (unknown option, ``--limit abc``, missing argument): click's usage, a
      "Try ... --help" line and one ``Error:`` line, exit 2;
    * an ``sqlite3`` error that escaped a command (disk full, locked, not a database,
      malformed): ``re2llm-tui: error: workspace: <message>``, exit 2;
    * Ctrl+C: one "interrupted" line, exit 130; an aborted prompt (EOF): one line, exit 1.

    The command is invoked directly (``make_context`` + ``invoke``) rather than through
    typer's ``standalone_mode``, whose handling of errors differs between typer versions
    (typer 0.29 vendors click, and turns Ctrl+C into a silent ``Exit(130)``).
    """
    from re2llm_tui import control

    args = list(sys.argv[1:] if argv is None else argv)
    command = typer.main.get_command(app)
    # Ctrl+C / SIGTERM / SIGHUP ask the running job to stop: the local engine, the client
    # and every loop answer within a second, finished work is stored, one line is printed
    ctl = control.install(control.Control())
    previous = control.install_signal_handlers(ctl)
    try:
        return _main(command, args)
    finally:
        control.restore_signal_handlers(previous)
        control.install(control.Control())


def _main(command, args) -> int:
    import sqlite3

    from re2llm_tui.control import RunStop

    try:
        try:
            with command.make_context("re2llm-tui", args) as ctx:
                rv = command.invoke(ctx)
        except EOFError as exc:  # a prompt hit the end of its input
            raise typer.Abort() from exc
    except UserError as exc:
        _error(str(exc))
        return exc.exit_code
    except typer.Exit as exc:  # --help, ctx.exit(), typer.Exit(code)
        return exc.exit_code
    except typer.Abort as exc:
        if _interrupted(exc):
            return _interrupt_line()
        print("re2llm-tui: aborted", file=sys.stderr)
        return 1
    except typer.TyperException as exc:  # click's usage errors (vendored by typer >= 0.22)
        _show_usage_error(exc)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        return _interrupt_line()
    except RunStop as exc:  # a stop no command reported itself
        _error(f"stopped: {exc} (finished work is saved; rerun the same command to resume)")
        return exc.exit_code
    except sqlite3.DatabaseError as exc:  # OperationalError too: full disk, locked, malformed
        _error(f"workspace: {exc}")
        return 2
    except SystemExit as exc:  # a command's own exit code (e.g. 3: stopped by a budget)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except UnicodeEncodeError as exc:
        if "surrogates" not in str(exc.reason):
            raise
        # an argument with bytes that are not UTF-8 (Python keeps them as lone surrogates)
        _error("an argument is not valid UTF-8 text; check the terminal's encoding")
        return 2
    except BrokenPipeError:  # `re2llm-tui kb list | head`
        _silence_stdout()
        return 1
    return rv if isinstance(rv, int) else 0


def _error(message: str) -> None:
    """``re2llm-tui: error: <message>`` on one line; the message is data (a path, a hint,
    an SQLite message): control characters are shown escaped, never sent to the terminal."""
    from re2llm_tui.safe_text import clean

    print(f"re2llm-tui: error: {clean(' '.join(str(message).split()), oneline=True)}",
          file=sys.stderr)


def _interrupted(exc: BaseException) -> bool:
    seen = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _interrupt_line() -> int:
    print("re2llm-tui: interrupted (finished work is saved; rerun to resume)", file=sys.stderr)
    return 130


def _show_usage_error(exc) -> None:
    """Click's plain usage error (usage line, "Try ... --help", ``Error: ...``) on stderr,
    with control characters of what the user typed shown escaped."""
    import io

    from re2llm_tui.safe_text import clean

    buf = io.StringIO()
    if hasattr(exc, "show"):
        exc.show(file=buf)
    else:
        buf.write(f"Error: {exc.format_message()}\n")
    shown = buf.getvalue()
    if shown.strip():  # a group run without a command has printed its help already
        sys.stderr.write(clean(shown))


def _silence_stdout() -> None:
    import os

    try:  # stdout is gone: keep the interpreter's final flush from raising again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def entry() -> None:  # console script
    """Run :func:`main` and end the process at once.

    Every result is committed by then (each write commits; jobs joined their workers), so
    the interpreter's teardown -- 1-2.5 s of freeing litellm's module state, measured after
    a Ctrl+C -- is skipped: a stopped job returns to the shell within a second.
    """
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError, OSError):
        pass
    os._exit(code if isinstance(code, int) else 1)
