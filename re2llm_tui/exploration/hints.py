"""Turn 4's reply -> the proposed hints (numbered, bulleted or inline lists; labels, quotes
and over-long or too-short items dropped; a model's thinking split off first)."""

from __future__ import annotations

import re

from re2llm_tui.kb import store as kb
from re2llm_tui.llm.thinking import answer_of

_ITEM_PREFIX = re.compile(
    r"^\s*(?:[-*+•·–—]\s*|\(?\d{1,2}\s*[.):\]]\s*|\[\d{1,2}\]\s*|#+\s*)+", re.U)
_LABEL = re.compile(r"^\s*(?:\*\*|__)?\s*(?:hint|tip|suggestion)\s*\d*\s*(?:\*\*|__)?\s*[:.)-]\s*",
                    re.I)
_INLINE_ITEMS = re.compile(r"\s(?=\(?\d{1,2}[.)]\s+\S)")
_QUOTES = "\"'“”‘’«»`"


def parse_hints(reply: str, max_hints: int = 5) -> list[str]:
    """Hints from the turn-4 reply: numbered/bulleted lines, labels and markdown removed.
    Only the answer is read: a thinking block (``<think>...</think>``) never becomes a hint."""
    if not isinstance(reply, str):
        return []
    reply = answer_of(reply)
    if not reply.strip():
        return []
    lines = [ln for ln in reply.replace("\r", "\n").split("\n") if ln.strip()]
    if len(lines) == 1:
        lines = [p for p in _INLINE_ITEMS.split(lines[0]) if p.strip()]
    out: list[str] = []
    seen: set[str] = set()
    # when the reply has a list, only its items count; otherwise every line but chatter
    listed = any(_ITEM_PREFIX.match(ln) or _LABEL.match(ln) for ln in lines) and len(lines) > 1
    for line in lines:
        raw = line.strip()
        numbered = bool(_ITEM_PREFIX.match(raw) or _LABEL.match(raw))
        if listed and not numbered:
            continue
        text = _ITEM_PREFIX.sub("", raw)
        text = _LABEL.sub("", text)
        text = re.sub(r"(\*\*|__|`)", "", text).strip().strip(_QUOTES).strip()
        if not text or text.endswith(":"):
            continue  # a header ("Here are some hints:")
        if not numbered and len(lines) > 1 and re.match(
                r"(?i)(here|these|this|sure|okay|ok|i hope|i'm|i am|note|hope)\b", text):
            continue  # chatter around the hints
        if len(text.split()) < 3 or len(text) > kb.MAX_HINT_CHARS:
            continue
        text = " ".join(text.split())
        key = kb.text_key(text)
        if key in seen:
            continue
        seen.add(key)
        out.append(text)
        if len(out) >= max_hints:
            break
    return out
