"""A footer that recomposes only when the bindings it shows changed.

Textual's :class:`~textual.widgets.Footer` recomposes all its keys whenever the screen
publishes ``bindings_updated_signal`` -- on every screen switch and focus change -- even when
the keys are the same: ~30 new widgets styled and laid out each time (tens of ms per switch).
"""

from __future__ import annotations

from textual.widgets import Footer

from re2llm_tui.tui.textual_compat import footer_keys_shown


def _signature(screen) -> tuple:
    app = screen.app
    out = []
    for _node, binding, enabled, tooltip in screen.active_bindings.values():
        if binding.show:
            out.append((binding.key, binding.action, binding.description, binding.group,
                        app.get_key_display(binding), enabled, tooltip))
    return tuple(out)


class WorkbenchFooter(Footer):
    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self._shown: tuple | None = None

    def bindings_changed(self, screen) -> None:
        if not screen.app.app_focus or not (self.is_attached and screen is self.screen):
            super().bindings_changed(screen)   # Textual's own early returns
            return
        try:
            sig = _signature(screen)
        except Exception:   # never let an optimisation hide the keys
            sig = None
        if sig is not None and sig == self._shown and footer_keys_shown(self):
            return
        self._shown = sig
        super().bindings_changed(screen)
