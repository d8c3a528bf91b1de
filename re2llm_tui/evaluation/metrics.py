"""Ranking metrics with bootstrap confidence intervals.

A session's outcome is the 1-based rank of its target in the LLM's list, or ``None`` when
the target is absent.  HR@K = 1 if rank <= K; NDCG@K = 1/log2(rank+1) if rank <= K else 0
(one relevant item, so IDCG = 1); MRR@10 = 1/rank if rank <= 10.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

METRICS = ("hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10", "mrr@10")

Rank = int | None


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


def summarize(ranks: Iterable[Rank], n_boot: int = 1000, seed: int = 0,
              alpha: float = 0.05) -> dict:
    """Mean of every metric with a percentile-bootstrap (1-alpha) CI over sessions."""
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
    """The ``--json`` shape: ``{"n", "hr@1", ..., "mrr@10", "ci": {...}}`` rounded to 6 places."""
    out = {"n": summary["n"]}
    out.update({m: round(summary[m], 6) for m in METRICS})
    out["ci"] = {m: [round(v, 6) for v in summary["ci"][m]] for m in METRICS}
    return out


def format_table(rows: dict[str, dict], title: str | None = None,
                 baseline: str | None = None, paired: dict[str, dict] | None = None):
    """A rich Table: one row per named summary, each metric as ``mean [lo, hi]``.

    Names, the title and the baseline are data (file names, model strings, hint texts): they
    are passed as :func:`re2llm_tui.safe_text.text`, never parsed as markup.
    """
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
    for name, s in rows.items():
        cells = [text(name, oneline=True), str(s["n"])]
        for m in METRICS:
            lo, hi = s["ci"][m]
            cells.append(f"{s[m]:.3f} [{lo:.3f},{hi:.3f}]")
        if paired:
            p = paired.get(name)
            cells.append("—" if not p else f"{p['diff']:+.3f} [{p['lo']:+.3f},{p['hi']:+.3f}]")
        table.add_row(*cells)
    return table
