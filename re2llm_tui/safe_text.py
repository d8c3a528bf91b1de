"""Text that is data, never markup or terminal control.

Titles, hints, labels, paths, search queries and error messages come from users, data files
and LLMs.  Rich and Textual parse ``[...]`` as markup wherever a plain ``str`` is rendered
(``[/]`` raises ``MarkupError``, ``[bold]`` vanishes), and a terminal obeys escape
sequences printed raw (an OSC sequence in a hint can retitle the window or write a link).
Every place that shows such text goes through this module:

* :func:`clean` -- the string with terminal control characters made visible (ESC is shown
  as the four characters ``\\x1b``); newlines and tabs are kept unless ``oneline``.
* :func:`text` -- a :class:`rich.text.Text` of the cleaned string: never parsed as markup.
* :func:`escape` -- the cleaned string with Rich markup escaped, for interpolation into a
  markup template that the code itself owns.

No UI import at module level: the core and the CLI use it too.
"""

from __future__ import annotations

import re

# C0 controls except tab and newline, DEL, and the C1 range (0x80-0x9f)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_ONELINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _visible(match: re.Match) -> str:
    ch = match.group(0)
    if ch == "\n" or ch == "\r" or ch == "\t":
        return " "
    return f"\\x{ord(ch):02x}"


def clean(value, *, oneline: bool = False) -> str:
    """``value`` as a string whose control characters are printed as ``\\xNN`` text.

    ``oneline``: newlines, carriage returns and tabs become spaces as well.
    """
    s = value if isinstance(value, str) else str(value)
    pattern = _CONTROL_ONELINE if oneline else _CONTROL
    return pattern.sub(_visible, s)


def text(value, style: str = "", *, oneline: bool = False):
    """A :class:`rich.text.Text` of ``value``: shown verbatim, never parsed as markup."""
    from rich.text import Text

    return Text(clean(value, oneline=oneline), style=style)


def escape(value, *, oneline: bool = False) -> str:
    """``value`` cleaned and markup-escaped, safe inside a markup template."""
    from rich.markup import escape as _escape

    return _escape(clean(value, oneline=oneline))


def has_control(value: str) -> bool:
    """True when ``value`` holds a character :func:`clean` would rewrite."""
    return bool(_CONTROL.search(value))
