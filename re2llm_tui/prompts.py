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


# ------------------------------------------------------------------------------------------
# Reflective Exploration (re2llm_tui/reflection.py): the four-turn conversation about a
# session the LLM missed, and the LLM non-redundancy check of a new hint.

#: guards every reflection prompt below (stored in ``reflections.prompt_version``)
REFLECTION_VERSION = "reflect-v1"


def reflection_mistakes_prompt() -> str:
    """Turn 2: the target is not among the recommendations; infer the mistakes."""
    return ("None of the items you recommended is the one the user actually interacted with "
            "next. Please infer the possible mistakes you made in your recommendation.")


def reflection_analysis_prompt(target: str) -> str:
    """Turn 3: reveal the target; analyse from several aspects why it was missed."""
    return (f'The correct answer is "{target}". Please analyse, from several aspects (for '
            "example the user's preferences, the item's category, platform or genre, its "
            "popularity and era, and the order of the interactions), why you did not "
            "recommend it.")


def reflection_hints_prompt(max_hints: int = 5) -> str:
    """Turn 4: short imperative hints for trying again, without revealing the target."""
    return (f"Based on your analysis, write at most {max_hints} short hints that would help "
            "you recommend better when trying again for users like this one. Each hint must "
            "be one imperative sentence about what to pay attention to. Do not mention the "
            "correct answer, its title or any part of its name. Write one hint per line, "
            "numbered 1., 2., ...")


def redundancy_prompt(existing: list[str], new_hint: str) -> str:
    """The paper's non-redundancy check: does ``new_hint`` convey an idea already present?"""
    listed = "\n".join(f"{i}. {h}" for i, h in enumerate(existing, 1))
    return ("Here are the hints already in a knowledge base for recommendation:\n"
            f"{listed}\n\n"
            f'New hint: "{new_hint}"\n\n'
            "Does the new hint convey a similar idea to any hint in the list? Answer \"Yes, "
            "<number of the most similar hint>\" or \"No\", and nothing else.")
