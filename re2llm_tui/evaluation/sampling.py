"""Which sessions a run uses: the first ``--limit`` or a seeded ``--sample`` of a split.

A sample keeps the split's order (so runs over the same sample share every cached call and
reward outcome) and is recorded with the run as ``{"sample": n, "sample_seed": s}`` and the
ids' hash, so a comparison knows exactly which sessions it read.

A :class:`~re2llm_tui.data.dataset.Dataset` draws the same selection without reading the
split (:meth:`~re2llm_tui.data.dataset.Dataset.select`): both use
:func:`re2llm_tui.data.store.sample_indices`.
"""

from __future__ import annotations

import hashlib

from re2llm_tui.data.store import check_selection, sample_indices


def select_sessions(sessions: list, *, limit: int | None = None, sample: int | None = None,
                    seed: int = 0) -> list:
    """``sessions`` cut to the first ``limit``, or a seeded ``sample`` of them (in order)."""
    check_selection(limit, sample)
    if limit is not None:
        return list(sessions[:limit])
    if sample is not None and sample < len(sessions):
        return [sessions[i] for i in sample_indices(len(sessions), sample, seed)]
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
