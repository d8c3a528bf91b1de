"""Errors the user can act on.

Every failure caused by input (a missing file, a malformed pickle, an unknown hint id,
an unreachable server) is raised as :class:`UserError` with a one-line message.  The CLI
prints it and exits with code 2; the TUI shows it as a notification.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class DataError(UserError):
    """A dataset file is missing or malformed."""


class WorkspaceError(UserError):
    """The SQLite workspace cannot be opened or written."""


def read_input(path: str | Path, *, allow_empty: bool = False, **bounds) -> bytes:
    """The bytes of an input file, or a one-line :class:`DataError` naming it: a regular
    file only, read up to a size limit (:func:`re2llm_tui.safe_files.read_input`)."""
    from re2llm_tui.safe_files import read_input as _read

    return _read(path, allow_empty=allow_empty, **bounds)
