"""Decoding parameters: the client's defaults merged with a call's, and the ranking bound.

A leaf module: :mod:`re2llm_tui.llm.ranking` (the local engine) and the client both use
:data:`RANK_MAX_TOKENS`, so that local and served runs decode a ranking alike.

With a model's :class:`~re2llm_tui.llm.capabilities.Decoding` profile, :func:`merge_decoding`
sends only what the model accepts: no ``temperature`` to a model that refuses it, no ``seed``
where refused, the output limit under the model's parameter name (``max_completion_tokens``
for OpenAI's reasoning models) with room for the reasoning, and ``reasoning_effort`` where
set.  A model that decodes greedily as before (no reasoning, temperature and seed taken, no
effort) gets exactly the dict it always got, so its cache keys and requests are unchanged.
"""

from __future__ import annotations

from re2llm_tui.errors import UserError

#: max_tokens of a free-generation ranking reply (10 titles fit with room to spare)
RANK_MAX_TOKENS = 512

#: decoding keys that are part of the cache key but never sent (``sample``: the i-th of
#: ``--samples N`` replies to one prompt; sample 0 has no key, so it keeps today's key)
KEY_ONLY = ("sample",)

_LIMITS = ("max_tokens", "max_completion_tokens")

#: the most samples ``--samples`` asks for per request
MAX_SAMPLES = 50


def check_samples(samples: int | None) -> int:
    """``--samples``: 1 to :data:`MAX_SAMPLES` (one-line UserError); None: 1."""
    if samples is None:
        return 1
    if samples < 1 or samples > MAX_SAMPLES:
        raise UserError(f"--samples must be between 1 and {MAX_SAMPLES} (got {samples}; each "
                        "sample asks every request once more)")
    return int(samples)


def sample_decoding(j: int) -> dict:
    """The decoding a request's ``j``-th sample adds: nothing for sample 0 (today's cache
    key), the key-only ``sample=j`` after it (:data:`~re2llm_tui.llm.decoding.KEY_ONLY`:
    part of the cache key, never sent)."""
    return {"sample": j} if j else {}


def plain(profile) -> bool:
    """The profile decodes as every model did before profiles: the client's temperature and
    seed sent, ``max_tokens`` as given, no effort (``None``: no profile)."""
    return profile is None or (not profile.is_reasoning and profile.temperature is not None
                               and profile.seed and profile.effort is None
                               and profile.limit_param == "max_tokens")


def merge_decoding(temperature: float, seed: int, overrides: dict, profile=None) -> dict:
    """``temperature`` and ``seed`` of the client, then a call's own parameters (``None``
    values dropped), as ``profile`` lets them through.  The result is part of the cache
    key; :func:`sendable` is what reaches the model."""
    if plain(profile):
        d = {"temperature": temperature, "seed": seed}
        d.update({k: v for k, v in overrides.items() if v is not None})
        return d
    d = profile.params(None, temperature=temperature, seed=seed)
    for k, v in overrides.items():
        if v is None:
            continue
        if k in _LIMITS:
            d[profile.limit_param] = profile.output_limit(int(v))
        elif k == "temperature" and profile.temperature is None:
            continue                       # the model refuses it: never sent
        elif k == "seed" and not profile.seed:
            continue
        elif k == "reasoning_effort" and profile.effort is None:
            continue
        else:
            d[k] = v
    return d


def sendable(dec: dict) -> dict:
    """The decoding parameters sent to the model (key-only entries dropped)."""
    if not any(k in dec for k in KEY_ONLY):
        return dec
    return {k: v for k, v in dec.items() if k not in KEY_ONLY}


def output_limit_of(dec: dict) -> int | None:
    """The output limit a request carries (either parameter name)."""
    for k in ("max_completion_tokens", "max_tokens"):
        if dec.get(k) is not None:
            return int(dec[k])
    return None
