"""Ranking metrics with bootstrap confidence intervals.

A session's outcome is the 1-based rank of its target in the LLM's list, or ``None`` when
the target is absent.  HR@K = 1 if rank <= K; NDCG@K = 1/log2(rank+1) if rank <= K else 0
(one relevant item, so IDCG = 1); MRR@10 = 1/rank if rank <= 10.  How the rank is counted
(reply positions by default) is :func:`re2llm_tui.llm.parsing.target_rank`'s business.

Beside the metrics, :func:`summarize` reports how usable the replies were (:data:`VALIDITY`):
the valid-output rate (share of listed items that match a candidate), hallucinations per
reply, and how many replies list fewer than 10 distinct valid candidates.  A row without
replies (the content ranker) has ``None`` there, shown as "—".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence

import numpy as np

METRICS = ("hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10", "mrr@10")

Rank = int | None

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


def _columns(ranks: Sequence[Rank]) -> dict[str, list[float]]:
    per = [session_metrics(r) for r in ranks]
    return {m: [p[m] for p in per] for m in METRICS}


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _boot_indices(n: int, n_boot: int, seed: int):
    """Bootstrap resamples of ``range(n)``; the same seed gives the same resamples."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def validity(replies: Iterable[ReplyCounts | None] | None) -> dict:
    """The :data:`VALIDITY` keys over ``replies`` (``None`` entries, failed calls, skipped);
    every value ``None`` when ``replies`` is ``None`` (a row without replies)."""
    if replies is None:
        return {k: None for k in VALIDITY}
    got = [r for r in replies if r is not None]
    listed = sum(int(r.listed) for r in got)
    valid = sum(int(r.valid) for r in got)
    return {"replies": len(got),
            "valid_rate": valid / listed if listed else (None if not got else 0.0),
            "hallucinations_per_reply": (listed - valid) / len(got) if got else None,
            "short_replies": sum(1 for r in got if int(r.distinct) < FULL_LIST)}


def summarize(ranks: Iterable[Rank], n_boot: int = 1000, seed: int = 0,
              alpha: float = 0.05, replies: Iterable[ReplyCounts | None] | None = None) -> dict:
    """Mean of every metric with a percentile-bootstrap (1-alpha) CI over sessions, and the
    replies' validity (:func:`validity`; ``replies=None``: a row without replies)."""
    ranks = list(ranks)
    cols = _columns(ranks)
    out: dict = {"n": len(ranks)}
    out.update({m: _mean(cols[m]) for m in METRICS})
    ci: dict[str, list[float]] = {}
    n = len(ranks)
    if n:
        idx = _boot_indices(n, n_boot, seed)
        for m in METRICS:
            boots = np.sort(np.asarray(cols[m])[idx].mean(axis=1))
            ci[m] = [float(np.quantile(boots, alpha / 2)), float(np.quantile(boots, 1 - alpha / 2))]
    else:
        ci = {m: [0.0, 0.0] for m in METRICS}
    out["ci"] = ci
    out.update(validity(replies))
    return out


def paired_difference(ranks_a: Sequence[Rank], ranks_b: Sequence[Rank], metric: str = "ndcg@10",
                      n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Mean of (a - b) over the same sessions, with a paired bootstrap CI and a p-value.

    ``p`` is the two-sided bootstrap share of resampled differences on the other side of 0.
    """
    if len(ranks_a) != len(ranks_b):
        raise ValueError("paired difference needs the same sessions in both runs")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}")
    a = _columns(ranks_a)[metric]
    b = _columns(ranks_b)[metric]
    d = [x - y for x, y in zip(a, b)]
    n = len(d)
    if not n:
        return {"metric": metric, "n": 0, "diff": 0.0, "lo": 0.0, "hi": 0.0, "p": 1.0}
    boots = np.asarray(d)[_boot_indices(n, n_boot, seed)].mean(axis=1)
    mean = sum(d) / n
    below = float((boots <= 0).mean())
    above = float((boots >= 0).mean())
    return {"metric": metric, "n": n, "diff": mean,
            "lo": float(np.quantile(boots, alpha / 2)),
            "hi": float(np.quantile(boots, 1 - alpha / 2)),
            "p": min(1.0, 2 * min(below, above))}


def to_json(summary: dict) -> dict:
    """The ``--json`` shape: ``{"n", "hr@1", ..., "mrr@10", "ci": {...}, "replies",
    "valid_rate", "hallucinations_per_reply", "short_replies"}`` rounded to 6 places (the
    validity keys ``null`` for a row without replies, or a summary stored before them)."""
    out = {"n": summary["n"]}
    out.update({m: round(summary[m], 6) for m in METRICS})
    out["ci"] = {m: [round(v, 6) for v in summary["ci"][m]] for m in METRICS}
    for key in VALIDITY:
        v = summary.get(key)
        out[key] = round(v, 6) if isinstance(v, float) else v
    return out


def validity_cells(summary: dict) -> list[str]:
    """The table cells of the validity keys: valid %, hallucinations per reply, short replies
    ("—" where there are no replies)."""
    if not summary.get("replies"):
        return ["—", "—", "—"]
    rate = summary.get("valid_rate")
    per = summary.get("hallucinations_per_reply")
    short = summary.get("short_replies")
    return ["—" if rate is None else f"{100 * rate:.1f}%",
            "—" if per is None else f"{per:.2f}",
            "—" if short is None else str(short)]


def format_table(rows: dict[str, dict], title: str | None = None,
                 baseline: str | None = None, paired: dict[str, dict] | None = None):
    """Two rich tables as one renderable: the metrics, one row per named summary, each metric
    as ``mean [lo, hi]``; under it the replies' validity, the same rows: how many replies,
    the valid-output rate, hallucinations per reply and replies with fewer than 10 valid
    items ("—" for a row without replies).  Two tables, so that both read at 80 columns.

    Names, the title and the baseline are data (file names, model strings, hint texts): they
    are passed as :func:`re2llm_tui.safe_text.text`, never parsed as markup.
    """
    from rich.console import Group
    from rich.table import Table

    from re2llm_tui.safe_text import text

    table = Table(title=text(title, oneline=True) if title is not None else None)
    table.add_column("run / policy", style="bold")
    table.add_column("n", justify="right")
    for m in METRICS:
        table.add_column(m.upper(), justify="right")
    if paired:
        metric = (next(iter(paired.values()))["metric"]).upper()
        table.add_column(text(f"Δ{metric} vs {baseline}", oneline=True), justify="right")
    replies = Table(caption="valid: share of listed items that match a candidate; "
                            "<10 valid: replies listing fewer than 10 valid items")
    replies.add_column("run / policy", style="bold")
    for head in ("replies", "valid", "halluc/reply", "<10 valid"):
        replies.add_column(head, justify="right")
    for name, s in rows.items():
        cells = [text(name, oneline=True), str(s["n"])]
        for m in METRICS:
            lo, hi = s["ci"][m]
            cells.append(f"{s[m]:.3f} [{lo:.3f},{hi:.3f}]")
        if paired:
            p = paired.get(name)
            cells.append("—" if not p else f"{p['diff']:+.3f} [{p['lo']:+.3f},{p['hi']:+.3f}]")
        table.add_row(*cells)
        replies.add_row(text(name, oneline=True), str(s.get("replies") or "—"),
                        *validity_cells(s))
    return Group(table, replies)
