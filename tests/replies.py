"""Realistic LLM replies built from real sessions, shared by the scripted-LLM tests."""

from __future__ import annotations

import re


def ranked_reply(session, rank: int | None) -> str:
    """A numbered top-10 list of real candidates with the target at ``rank`` (absent: None)."""
    others = [c for c in session.candidates if c != session.target][:10]
    if rank is not None:
        others.insert(rank - 1, session.target)
    return "\n".join(f"{i}. {t}" for i, t in enumerate(others[:10], 1))


def as_listed(fallback: str):
    """A scripted reply function: the prompt's first 10 candidates in the prompt's order (the
    target ranks where the prompt lists it); ``fallback`` to a prompt without a candidate set
    (a reflection turn)."""
    def reply(messages):
        m = re.search(r"candidate set: (.*?)\. Please", messages[-1]["content"], re.DOTALL)
        if not m:
            return fallback
        return "\n".join(f"{i}. {t}" for i, t in enumerate(m.group(1).split("; ")[:10], 1))

    return reply


def prompt_reader(sessions):
    """A function reading the messages of a recommendation prompt of one of ``sessions``:
    ``(session, hint text)`` ('' for no hint); ``(None, ...)`` for any other prompt."""
    by_prompt = {s.prompt.rstrip(): s for s in sessions}

    def read(messages):
        content = messages[-1]["content"]
        s = by_prompt.get(content.rstrip())
        if s is None and " Hint: " in content:
            head, hint = content.rsplit(" Hint: ", 1)
            return by_prompt.get(head.rstrip()), hint.strip()
        return s, ""

    return read
