"""Errors the user can act on.

Every failure caused by input (a missing file, a malformed pickle, an unknown hint id,
an unreachable server) is raised as :class:`UserError` with a one-line message.  The CLI
prints it and exits with code 2; the TUI shows it as a notification.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class DataError(UserError):
    """A dataset file is missing or malformed."""


class WorkspaceError(UserError):
    """The SQLite workspace cannot be opened or written."""

