"""Decoding parameters: the client's defaults merged with a call's, and the ranking bound.

A leaf module: :mod:`re2llm_tui.llm.ranking` (the local engine) and the client both use
:data:`RANK_MAX_TOKENS`, so that local and served runs decode a ranking alike.
"""

from __future__ import annotations

#: max_tokens of a free-generation ranking reply (10 titles fit with room to spare)
RANK_MAX_TOKENS = 512


def merge_decoding(temperature: float, seed: int, overrides: dict) -> dict:
    """``temperature`` and ``seed`` of the client, then a call's own parameters (``None``
    values dropped).  The result is part of the cache key."""
    d = {"temperature": temperature, "seed": seed}
    d.update({k: v for k, v in overrides.items() if v is not None})
    return d
