"""Item titles as the release writes them and as a reply names them.

The floor every title-reading module stands on (the release loader, an import, the reply
parser, the knowledge base): :func:`unescape` decodes a title's HTML entities,
:func:`normalize` makes the key under which a reply line matches a candidate, and
:func:`title_key` is that key for an item of an import.  No import of the package.
"""

from __future__ import annotations

import html
import re

_WORD = re.compile(r"[a-z0-9]+")


def unescape(title: str) -> str:
    """Decode HTML entities (twice, for ``&amp;amp;``) and collapse whitespace."""
    t = html.unescape(html.unescape(title))
    return " ".join(t.split())


def normalize(title: str) -> str:
    """Lower-case, entity-decoded, punctuation-free, whitespace-collapsed title key."""
    return " ".join(_WORD.findall(unescape(title).lower()))


def title_key(title: str) -> str:
    """The key under which two titles match the same reply line (the reply parser's)."""
    return normalize(title)
