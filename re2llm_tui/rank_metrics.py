"""A session's rank metrics: the floor below every method package.

A session's outcome is the 1-based rank of its target in the LLM's list, or ``None`` when
the target is absent.  HR@K = 1 if rank <= K; NDCG@K = 1/log2(rank+1) if rank <= K else 0
(one relevant item, so IDCG = 1); MRR@10 = 1/rank if rank <= 10.  Exploration (a hint's
gain), the reward table (an outcome's NDCG) and the knowledge base (a hint's evidence) read
them here; :mod:`re2llm_tui.evaluation.metrics` builds its summaries, confidence intervals
and tables on them.  No import of the package.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, Sequence

import numpy as np

METRICS = ("hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10", "mrr@10")

Rank = int | None
#: a session's outcome: one rank, or the ranks of its samples (``--samples N``)
Outcome = Rank | Sequence[Rank]

#: reply-validity keys of a summary (``None`` where there are no replies)
VALIDITY = ("replies", "valid_rate", "hallucinations_per_reply", "short_replies")
#: a reply is "short" when it lists fewer than this many distinct valid candidates
FULL_LIST = 10


class ReplyCounts(Protocol):
    """What :func:`summarize` reads of a reply (a :class:`~re2llm_tui.llm.parsing.ParsedRanking`
    or :class:`Counts`)."""

    listed: int      # listed items (matched or hallucinated)
    valid: int       # listed items matching a candidate
    distinct: int    # distinct candidates in the ranking


@dataclass(frozen=True)
class Counts:
    """A reply's counts (:class:`ReplyCounts`) without the reply."""

    listed: int
    valid: int
    distinct: int

    @classmethod
    def of(cls, reply: ReplyCounts) -> Counts:
        return cls(int(reply.listed), int(reply.valid), int(reply.distinct))


def rank_of(ranking: Sequence[int], target_index: int) -> Rank:
    """1-based position of ``target_index`` in ``ranking``; ``None`` if absent."""
    try:
        return list(ranking).index(target_index) + 1
    except ValueError:
        return None


def hr_at(rank: Rank, k: int) -> float:
    return 1.0 if rank is not None and rank <= k else 0.0


def ndcg_at(rank: Rank, k: int) -> float:
    return 1.0 / math.log2(rank + 1) if rank is not None and rank <= k else 0.0


def mrr_at(rank: Rank, k: int) -> float:
    return 1.0 / rank if rank is not None and rank <= k else 0.0


def session_metrics(rank: Rank) -> dict[str, float]:
    return {
        "hr@1": hr_at(rank, 1), "hr@5": hr_at(rank, 5), "hr@10": hr_at(rank, 10),
        "ndcg@5": ndcg_at(rank, 5), "ndcg@10": ndcg_at(rank, 10), "mrr@10": mrr_at(rank, 10),
    }


@lru_cache(maxsize=4)
def boot_indices(n: int, n_boot: int, seed: int):
    """Bootstrap resamples of ``range(n)``; the same seed gives the same resamples (kept,
    read-only, for the next call of the same size: a KB's hints share one table)."""
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    idx.setflags(write=False)
    return idx


def bootstrap_mean(values: Sequence[float], n_boot: int = 1000, seed: int = 0,
                   alpha: float = 0.05) -> dict:
    """Mean of ``values`` with a seeded percentile-bootstrap (1-alpha) CI and the two-sided
    bootstrap p-value of "mean = 0" (the share of resampled means on the other side of 0);
    ``{"n", "mean", "lo", "hi", "p"}``, all 0 (p 1) for no values."""
    d = np.asarray(values, dtype=np.float64)
    n = int(d.size)
    if not n:
        return {"n": 0, "mean": 0.0, "lo": 0.0, "hi": 0.0, "p": 1.0}
    boots = d[boot_indices(n, n_boot, seed)].mean(axis=1)
    below = float((boots <= 0).mean())
    above = float((boots >= 0).mean())
    return {"n": n, "mean": float(d.mean()),
            "lo": float(np.quantile(boots, alpha / 2)),
            "hi": float(np.quantile(boots, 1 - alpha / 2)),
            "p": min(1.0, 2 * min(below, above))}
