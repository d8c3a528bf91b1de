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


def read_input(path: str | Path, *, allow_empty: bool = False) -> bytes:
    """The bytes of an input file, or a one-line :class:`DataError` naming it."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not allow_empty and not raw.strip():
        raise DataError(f"{path}: file is empty")
    return raw
