"""Thinking kept apart from the answer: :func:`split_reply` runs before anything parses a reply.

Reasoning models hand their thinking back in one of two ways, and both are separated here:

* **in the text**: a leading ``<think>...</think>`` block (Qwen3, DeepSeek-R1 served by vLLM,
  llama.cpp or Ollama without a reasoning parser), or ``<thinking>`` / ``<reasoning>``, in
  any case, with attributes or spaces inside the tag (``<THINK >``, ``</ think>``), several
  blocks one after the other.  Rules, in order:

  1. every *closed* block of these tags is moved to the reasoning, wherever it stands -- a
     block in the middle of an answer (interleaved thinking) is thinking too, never part of a
     ranking or a hint;
  2. an *unclosed* opening tag (the reply was cut off by its output limit while the model was
     still thinking) makes the rest of the text reasoning: a cut-off at the start leaves an
     **empty answer** (:attr:`Reply.cut_off` is True), a cut-off after an answer keeps the
     answer before the tag;
  3. a closing ``</think>`` with no opening tag before it (R1-style chat templates put
     ``<think>`` into the *prompt*, so the completion starts inside the thinking): the text
     before it is reasoning.

  A text with none of these tags and no reasoning field comes back unchanged (the same
  string, not stripped); whenever reasoning was found the answer is stripped, so that the
  same reply gives the same answer whether litellm split it (it leaves the blank lines after
  ``</think>`` in the content) or this module did.

* **in a field of the message** (``reasoning_field``): ``reasoning_content`` (DeepSeek,
  vLLM's reasoning parser, and litellm's normalised field for every provider that thinks:
  Anthropic, Gemini, Ollama, OpenRouter), ``reasoning`` (vLLM >= 0.10, OpenRouter),
  Ollama's ``message.thinking``, Anthropic ``thinking_blocks`` (as litellm returns them:
  ``[{"type": "thinking", "thinking": "...", "signature": "..."}]``; redacted blocks carry
  no text).  :func:`reasoning_of` reads them from a litellm ``Message`` or a raw dict.

:func:`split_reply` is idempotent: ``split_reply(split_reply(t).answer).answer`` is the same
answer, so every consumer (the ranking parser, the reflection turns, the hint parser, the
leak check, the redundancy check) calls :func:`answer_of` at its entry and is safe whether it
gets a raw reply or one the client already split.

A leaf module (no project imports), cheap to import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: the tag names a model wraps its thinking in (case-insensitive)
THINK_TAGS = ("think", "thinking", "reasoning")

_NAMES = "|".join(THINK_TAGS)
_OPEN = re.compile(rf"<\s*({_NAMES})(?:\s[^<>]*)?>", re.I)
_CLOSE_ANY = re.compile(rf"<\s*/\s*({_NAMES})\s*>", re.I)


def _close_of(name: str) -> re.Pattern:
    return re.compile(rf"<\s*/\s*{re.escape(name)}\s*>", re.I)


@dataclass(frozen=True)
class Reply:
    """A reply split in two: what parsers read (``answer``) and the thinking (``reasoning``,
    ``""`` when there was none)."""

    answer: str
    reasoning: str = ""
    #: the thinking was cut off (an unclosed tag): the output limit ran out while thinking
    cut_off: bool = False

    @property
    def has_reasoning(self) -> bool:
        return bool(self.reasoning)


def _join(parts) -> str:
    return "\n\n".join(p for p in (str(x).strip() for x in parts if x) if p)


def split_reply(text: str | None, reasoning_field: Any = None) -> Reply:
    """``text`` (a reply's content) and ``reasoning_field`` (a provider's reasoning: a string,
    a list of strings or of Anthropic thinking blocks, or ``None``) as a :class:`Reply`.
    See the module docstring for the rules.  Never raises."""
    field = _field_text(reasoning_field)
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if "<" not in text:
        return Reply(text.strip() if field else text, field)
    thoughts: list[str] = []
    answer_parts: list[str] = []
    rest = text
    cut_off = False
    # rule 3: a closing tag before any opening tag -- the completion began inside the thinking
    first_close = _CLOSE_ANY.search(rest)
    first_open = _OPEN.search(rest)
    if first_close is not None and (first_open is None or first_close.start() < first_open.start()):
        thoughts.append(rest[:first_close.start()])
        rest = rest[first_close.end():]
    while True:
        m = _OPEN.search(rest)
        if m is None:
            answer_parts.append(rest)
            break
        close = _close_of(m.group(1)).search(rest, m.end())
        answer_parts.append(rest[:m.start()])
        if close is None:                       # rule 2: cut off while thinking
            thoughts.append(rest[m.end():])
            cut_off = not "".join(answer_parts).strip()
            break
        thoughts.append(rest[m.end():close.start()])   # rule 1
        rest = rest[close.end():]
    if not thoughts:
        return Reply(text.strip() if field else text, field)
    # a stray closing tag left in the answer is dropped (so that splitting again finds nothing)
    answer = _CLOSE_ANY.sub("", "".join(answer_parts)).strip()
    return Reply(answer, _join([field, *thoughts]), cut_off)


def answer_of(text: str | None) -> str:
    """The answer part of a reply (idempotent; a text without thinking comes back as is)."""
    if not isinstance(text, str):
        return "" if text is None else str(text)
    return split_reply(text).answer


# ------------------------------------------------------------------ provider fields

#: message fields that carry a provider's reasoning text, in the order they are read
REASONING_FIELDS = ("reasoning_content", "reasoning", "thinking")


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _field_text(value: Any) -> str:
    """A reasoning field as text: a string, or a list of strings / thinking blocks."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (list, tuple)):
        parts = []
        for block in value:
            if isinstance(block, str):
                parts.append(block)
                continue
            kind = _get(block, "type")
            if kind not in (None, "thinking", "reasoning", "reasoning_text", "text"):
                continue                    # redacted_thinking: encrypted, no text
            parts.append(_get(block, "thinking") or _get(block, "text") or "")
        return _join(parts)
    return ""


def reasoning_of(message: Any) -> str:
    """The reasoning a provider returned beside the content of ``message`` (a litellm
    ``Message``, an OpenAI-style dict or Ollama's ``message``): ``reasoning_content``, else
    ``reasoning``, else ``thinking``, else the text of ``thinking_blocks``; ``""`` if none.

    litellm copies Anthropic's thinking blocks into ``reasoning_content`` *and*
    ``thinking_blocks``: the first field found wins, so the text is not counted twice."""
    if message is None:
        return ""
    for name in REASONING_FIELDS:
        text = _field_text(_get(message, name))
        if text:
            return text
    return _field_text(_get(message, "thinking_blocks"))


def split_message(message: Any) -> Reply:
    """A whole chat message (its ``content`` and its reasoning fields) as a :class:`Reply`."""
    return split_reply(_get(message, "content"), reasoning_of(message))


def reasoning_tokens_of(usage: Any) -> int:
    """Reasoning tokens of a reply's usage (0 when not reported): OpenAI's
    ``completion_tokens_details.reasoning_tokens`` (litellm puts every provider's count
    there: Anthropic, Gemini's ``thoughtsTokenCount``, DeepSeek), or a top-level
    ``reasoning_tokens``."""
    if usage is None:
        return 0
    details = _get(usage, "completion_tokens_details")
    n = _get(details, "reasoning_tokens") if details is not None else None
    if n is None:
        n = _get(usage, "reasoning_tokens")
    try:
        return max(0, int(n or 0))
    except (TypeError, ValueError):
        return 0
