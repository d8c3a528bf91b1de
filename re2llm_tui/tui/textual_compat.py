"""Every use of Textual's private API in the workbench, one small function each.

The rest of the TUI calls these functions and touches no private attribute of a Textual
object (``tests/test_tui_structure.py`` checks it).  Each was read against the source of
**textual==8.2.8**, the version ``pyproject.toml`` pins (:data:`CHECKED_WITH`); on an upgrade,
read each function's comment against the new source before changing the pin.  Every use is
either a latency fix (a screen switch must stay well under 50 ms while the agent trains:
``benchmarks/bench_tui_latency.py``) or a read that Textual offers no public accessor for.

Not an attribute but also Textual's internals: :class:`~.screens._base.WorkbenchScreen`
names its handlers ``_on_mount`` / ``_on_screen_suspend`` / ``_on_screen_resume``.  Textual
calls one handler per class of the MRO, most derived first
(``MessagePump._get_dispatch_methods``), so these run *before* ``Screen``'s own
``_on_screen_resume`` (which is what :func:`skip_restyle` relies on), and, being in the
base class's own ``__dict__``, they are never shadowed by a screen's ``on_mount``.
"""

from __future__ import annotations

from typing import Any

#: the Textual release every function below was checked against
CHECKED_WITH = "8.2.8"

# --------------------------------------------------------------------------- screens


def screen_stacks(app) -> dict[str, list[Any]]:
    """Mode name -> that mode's stack of screens (bottom first).

    ``App._screen_stacks``: the public ``App.screen_stack`` is the *current* mode's stack
    only, and no public accessor lists the screens of the other modes, which the app must
    reach (a KB change reloads the hidden screens too; a hidden screen is marked stale)."""
    return app._screen_stacks


def mode_is_mounted(app, mode: str) -> bool:
    """Whether ``mode``'s screen was made already (``App.switch_mode`` mounts it on first
    use; ``_screen_stacks`` holds a mode from then on)."""
    return mode in screen_stacks(app)


def mounted_screens(app) -> list[Any]:
    """Every mounted screen of every mode, each once (bottom of each stack first)."""
    seen: list[Any] = []
    for stack in screen_stacks(app).values():
        for screen in stack:
            if screen not in seen and screen.is_mounted:
                seen.append(screen)
    return seen


class UndelayedModeSwitch:
    """App mixin: ``switch_mode`` to an already mounted mode skips Textual's 50 ms
    ``delay_update``.

    ``App.switch_mode`` (8.2.8) calls ``self.delay_update()`` -- a 50 ms batch that masks a
    half-composed *new* screen -- before every switch.  A mounted screen is painted whole at
    once, and that delay was most of the 80 ms a switch took in tmux.  ``delay_update`` is a
    public method, but that ``switch_mode`` calls it (and nothing else does during the
    switch) is an implementation detail, hence this override lives here."""

    _undelayed_switch = False

    def switch_mode(self, mode: str):
        self._undelayed_switch = mode_is_mounted(self, mode)
        try:
            return super().switch_mode(mode)
        finally:
            self._undelayed_switch = False

    def delay_update(self, delay: float = 0.05) -> None:
        if not self._undelayed_switch:
            super().delay_update(delay)


# --------------------------------------------------------------------------- styles


def style_fingerprint(app) -> tuple:
    """What a hidden screen's styles depend on app-wide: theme, stylesheet generation
    (``App._css_update_count``, incremented whenever the stylesheet or theme is invalidated;
    there is no public counter) and the app's pseudo-classes (``:focus``, ``:dark``, ...)."""
    return (app.theme, app._css_update_count, frozenset(app.get_pseudo_classes()))


def skip_restyle(event) -> None:
    """Resume this screen without re-applying the stylesheet to all its nodes.

    ``ScreenResume.refresh_styles`` is a public field, but only its reader,
    ``Screen._on_screen_resume``, gives it effect (``update_node_styles`` over the whole
    screen: it clears every ``DataTable``'s render caches, ~1 ms a cell), and the caller must
    run before that reader: see the module docstring on handler order."""
    event.refresh_styles = False


def mark_styles_current(screen) -> None:
    """Record that ``screen``'s styles are those of the app's current stylesheet.

    Textual leaves a mode's screen at ``_css_update_count == -1`` after its first mount, so
    the first switch back to each screen ran ``refresh_css`` over the whole app
    (``App.switch_mode`` compares ``screen._css_update_count`` with the app's).  Textual
    itself marks screens current the same way at the end of ``App.refresh_css``."""
    screen._css_update_count = screen.app._css_update_count


# --------------------------------------------------------------------------- widgets


def footer_keys_shown(footer) -> bool:
    """Whether a ``Footer`` has composed its keys at least once (``Footer._bindings_ready``,
    a private reactive that ``Footer.bindings_changed`` sets): until then the footer must
    recompose even when the bindings look unchanged."""
    return bool(footer._bindings_ready)


# --------------------------------------------------------------------------- terminal


def survive_terminal_loss() -> None:
    """Keep Textual's output thread draining its queue after the terminal is gone.

    ``textual.drivers._writer_thread.WriterThread.run`` writes the screen to the terminal
    from a queue of at most 30 writes; once the terminal is closed (tmux window killed, ssh
    dropped) a write raises ``OSError: [Errno 5] Input/output error`` and the thread dies.
    The next 30 writes fill its queue and the main thread then blocks for ever in
    ``Queue.put`` (seen in ``stop_application_mode`` while quitting on SIGHUP): the event
    loop never runs again, SIGTERM's quit is never processed, and only SIGKILL ended the
    app.  This replacement of ``run`` (the same loop) drops the output after the first
    ``OSError`` and keeps draining, so writes never block.  Class-wide and idempotent."""
    from textual.drivers import _writer_thread

    cls = _writer_thread.WriterThread
    if getattr(cls, "_re2llm_survives_terminal_loss", False):
        return

    def run(self) -> None:
        write, flush = self._file.write, self._file.flush
        get, qsize = self._queue.get, self._queue.qsize
        gone = False
        while True:
            text = get()
            if text is None:
                break
            if gone:
                continue
            try:
                write(text)
                if qsize() == 0:
                    flush()
            except (OSError, ValueError):     # EIO: the terminal closed; ValueError: closed file
                gone = True
        if not gone:
            try:
                flush()
            except (OSError, ValueError):
                pass

    cls.run = run
    cls._re2llm_survives_terminal_loss = True


# --------------------------------------------------------------------------- tests


def notifications(app) -> list:
    """The notifications shown now (``App._notifications``: Textual has no public reader;
    the tests assert on what the user was told)."""
    return list(app._notifications)
