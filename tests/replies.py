"""Realistic LLM replies built from real sessions, shared by the scripted-LLM tests."""

from __future__ import annotations


def ranked_reply(session, rank: int | None) -> str:
    """A numbered top-10 list of real candidates with the target at ``rank`` (absent: None)."""
    others = [c for c in session.candidates if c != session.target][:10]
    if rank is not None:
        others.insert(rank - 1, session.target)
    return "\n".join(f"{i}. {t}" for i, t in enumerate(others[:10], 1))
