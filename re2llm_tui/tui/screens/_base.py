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


class WorkbenchScreen(Screen):
    """A screen that, when resumed unchanged, is repainted from its caches (no restyle).

    Screens that show stored data name it in :attr:`DATA_SOURCES` (names of
    :data:`re2llm_tui.store.changes.SOURCES`, whose key changes when the data does); the app
    calls :meth:`refresh_if_changed` when another connection committed, and a hidden screen
    whose data changed reloads when shown again.
    """

    _suspended_fingerprint: tuple | None = None
    DATA_SOURCES: tuple[str, ...] = ()
    _loaded_key: tuple | None = None
    stale = False

    def data_key(self) -> tuple | None:
        return changes.change_key(self.app.db, self.DATA_SOURCES)

    def _on_mount(self) -> None:
        self._loaded_key = self.data_key()

    def refresh_if_changed(self) -> bool:
        """Reload when the data this screen shows changed since it was loaded."""
        reload = getattr(self, "reload", None)
        if reload is None:
            return False
        key = self.data_key()
        if key is None or key == self._loaded_key:
            return False
        self._loaded_key = key
        reload()
        return True

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
        if self.stale:
            self.stale = False
            self.refresh_if_changed()

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
