"""Every prompt the project sends, in one place, versioned.

Bump a version string whenever the text it guards changes: cached LLM outputs and stored
runs record the version they were made with, so results from different wordings are never
mixed silently.
"""

from __future__ import annotations

#: the recommendation prompt: the release's own prompt text, verbatim
RECOMMEND_VERSION = "release-v1"
#: how a hint is appended to the recommendation prompt
HINT_VERSION = "hint-v1"


def recommend_prompt(session_prompt: str, hint: str | None = None) -> str:
    """The release prompt, with a hint appended as a final instruction when given."""
    hint = (hint or "").strip()
    if not hint:
        return session_prompt
    return f"{session_prompt.rstrip()} Hint: {hint}"


def prompt_version(hint: str | None = None) -> str:
    """The version tag of :func:`recommend_prompt` for this call."""
    return RECOMMEND_VERSION if not (hint or "").strip() else f"{RECOMMEND_VERSION}+{HINT_VERSION}"
