"""Which sessions a run uses: the first ``--limit`` or a seeded ``--sample`` of a split.

A sample keeps the split's order (so runs over the same sample share every cached call and
reward outcome) and is recorded with the run as ``{"sample": n, "sample_seed": s}`` and the
ids' hash, so a comparison knows exactly which sessions it read.
"""

from __future__ import annotations

import hashlib

import numpy as np

from re2llm_tui.errors import UserError


def select_sessions(sessions: list, *, limit: int | None = None, sample: int | None = None,
                    seed: int = 0) -> list:
    """``sessions`` cut to the first ``limit``, or a seeded ``sample`` of them (in order)."""
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be >= 1 (got {limit})")
    if sample is not None and sample < 1:
        raise UserError(f"--sample must be >= 1 (got {sample})")
    if limit is not None and sample is not None:
        raise UserError("give --limit or --sample, not both")
    if limit is not None:
        return list(sessions[:limit])
    if sample is not None and sample < len(sessions):
        idx = np.sort(np.random.default_rng(seed).choice(len(sessions), sample, replace=False))
        return [sessions[int(i)] for i in idx]
    return list(sessions)


def selection_params(sessions: list, *, limit: int | None = None, sample: int | None = None,
                     seed: int = 0) -> dict:
    """What a stored run records about its sessions."""
    ids = ",".join(s.id for s in sessions)
    out = {"n_sessions": len(sessions),
           "sessions_sha": hashlib.sha256(ids.encode()).hexdigest()[:16]}
    if limit is not None:
        out["limit"] = limit
    if sample is not None:
        out.update(sample=sample, sample_seed=seed)
    return out
