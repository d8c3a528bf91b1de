"""The base of the workbench's screens: switching back to a screen costs no restyle.

``App.switch_mode`` resumes a screen with ``ScreenResume(refresh_styles=True)``, and Textual
then re-applies the stylesheet to every node of the screen.  Re-applying styles calls
``notify_style_update`` on each widget even when nothing changed, which clears a
``DataTable``'s render caches: every visible cell is rendered again (~1 ms per cell, a few
hundred ms for a full table), the charts are rebuilt, and the footer is recomposed.  A screen
that was merely hidden has the same styles as when it was left, unless something app-wide
changed meanwhile (the stylesheet or theme -- ``switch_mode`` handles that itself through
``refresh_css`` -- or an app pseudo-class such as ``:focus`` / ``:blur`` / ``:dark``, which
Textual only re-applies to the current screen).  So the resume skips the restyle when that
fingerprint is unchanged since the screen was suspended, as Textual already does when an
opaque screen is popped.

Textual also leaves a mode's screen marked as styled by an older stylesheet after its first
mount, so the first visit back to every screen re-applied the whole app's CSS
(``refresh_css``); a resumed screen is marked current here.

The Textual internals these rely on are in :mod:`re2llm_tui.tui.textual_compat`.
"""

from __future__ import annotations

from textual import events
from textual.screen import Screen

from re2llm_tui.store import changes
from re2llm_tui.tui import textual_compat
from re2llm_tui.tui.messages import WorkspaceChanged


class WorkbenchScreen(Screen):
    """A screen that, when resumed unchanged, is repainted from its caches (no restyle),
    and that follows the workspace.

    The app sends every mounted screen a :class:`~re2llm_tui.tui.messages.WorkspaceChanged`
    when something changed; a screen acts on the kinds it names in :attr:`SHOWS`, at once
    when it is the current screen, else when it is shown again (:meth:`show_changes`).
    ``data`` means another connection committed: screens that show stored data name it in
    :attr:`DATA_SOURCES` (names of :data:`re2llm_tui.store.changes.SOURCES`, whose key
    changes when the data does) and reload only when that key changed.
    """

    _suspended_fingerprint: tuple | None = None
    DATA_SOURCES: tuple[str, ...] = ()
    #: the kinds of :class:`WorkspaceChanged` this screen shows
    SHOWS: frozenset[str] = frozenset({"data", "kb", "runs", "reflections", "split"})
    _loaded_key: tuple | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        #: the changes that arrived while this screen was hidden
        self._pending: set[str] = set()

    def data_key(self) -> tuple | None:
        return changes.change_key(self.app.db, self.DATA_SOURCES)

    def _on_mount(self) -> None:
        self._loaded_key = self.data_key()

    def reload(self) -> None:
        """Read what the screen shows again (screens that show stored data override it)."""

    def refresh_if_changed(self) -> bool:
        """Reload when the data this screen shows changed since it was loaded."""
        key = self.data_key()
        if key is None or key == self._loaded_key:
            return False
        self._loaded_key = key
        self.reload()
        return True

    def on_workspace_changed(self, message: WorkspaceChanged) -> None:
        if message.what not in self.SHOWS:
            return
        if self.is_current:
            self.show_changes({message.what})
        else:
            self._pending.add(message.what)

    def show_changes(self, whats: set[str]) -> None:
        """Bring the screen up to date with these kinds of change (see :attr:`SHOWS`): one
        reload covers them all; ``data`` alone reloads only when the data key changed."""
        if "split" in whats:
            for header in self.query("AppHeader"):
                header.refresh_info()
        if whats - {"data"}:
            self.reload()
        elif "data" in whats:
            self.refresh_if_changed()

    def _on_screen_suspend(self) -> None:
        # runs before Screen._on_screen_suspend (handlers are dispatched down the MRO)
        self._suspended_fingerprint = textual_compat.style_fingerprint(self.app)

    def _on_screen_resume(self, event: events.ScreenResume) -> None:
        # runs before Screen._on_screen_resume, which reads ``refresh_styles``
        if event.refresh_styles and self._suspended_fingerprint is not None and \
                self._suspended_fingerprint == textual_compat.style_fingerprint(self.app):
            textual_compat.skip_restyle(event)
        self._suspended_fingerprint = None
        # switch_mode has run refresh_css if the stylesheet changed; this screen's styles
        # (applied at its mount or by that refresh) are those of the current stylesheet
        textual_compat.mark_styles_current(self)
        self.on_resumed()
        pending, self._pending = self._pending, set()
        if pending:
            self.show_changes(pending)

    def on_resumed(self) -> None:
        """Hook: the screen is current again (bring what changed while hidden up to date)."""


def cursor_row_key(table) -> str | None:
    """The key of the row under ``table``'s cursor (``None``: an empty table)."""
    if not table.row_count:
        return None
    try:
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    except Exception:   # the cursor outside the rows while the table is being refilled
        return None
