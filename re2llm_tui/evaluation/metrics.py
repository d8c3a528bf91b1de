"""Ranking metrics with bootstrap confidence intervals.

A session's outcome is the 1-based rank of its target in the LLM's list, or ``None`` when
the target is absent.  HR@K = 1 if rank <= K; NDCG@K = 1/log2(rank+1) if rank <= K else 0
(one relevant item, so IDCG = 1); MRR@10 = 1/rank if rank <= 10.  How the rank is counted
(reply positions by default) is :func:`re2llm_tui.llm.parsing.target_rank`'s business.

Beside the metrics, :func:`summarize` reports how usable the replies were (:data:`VALIDITY`):
the valid-output rate (share of listed items that match a candidate), hallucinations per
reply, and how many replies list fewer than 10 distinct valid candidates.  A row without
replies (the content ranker) has ``None`` there, shown as "—".

Sampled models (``--samples N``): a session's outcome is then the list of its N samples'
ranks.  Each metric is the mean over samples (per session, the mean of its samples; the
bootstrap CI resamples sessions of those means), and the summary carries the between-sample
spread: ``samples`` (N) and ``spread`` (per metric: the standard deviation of the N
per-sample values of the metric over all sessions, and their min and max), so that a hint's
effect can be told from sampling noise.  A summary of single outcomes has neither key.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from re2llm_tui.rank_metrics import (  # noqa: F401 - the rank metrics, re-exported
    FULL_LIST,
    METRICS,
    VALIDITY,
    Counts,
    Outcome,
    Rank,
    ReplyCounts,
    bootstrap_mean,
    hr_at,
    mrr_at,
    ndcg_at,
    rank_of,
    session_metrics,
)
from re2llm_tui.rank_metrics import boot_indices as _boot_indices


def is_sampled(outcome) -> bool:
    """A session's outcome given as the ranks of its samples (a list or tuple)."""
    return isinstance(outcome, (list, tuple))


def _session_values(outcome) -> dict[str, float]:
    """The metrics of one session: of its rank, or the mean over its samples' ranks."""
    if not is_sampled(outcome):
        return session_metrics(outcome)
    per = [session_metrics(r) for r in outcome]
    if not per:
        return session_metrics(None)
    return {m: sum(p[m] for p in per) / len(per) for m in METRICS}


def session_value(outcome, metric: str) -> float:
    """One metric of one session's outcome (a rank, or its samples' ranks: their mean)."""
    return _session_values(outcome)[metric]


def _columns(ranks: Sequence[Outcome]) -> dict[str, list[float]]:
    per = [_session_values(r) for r in ranks]
    return {m: [p[m] for p in per] for m in METRICS}


def n_samples(ranks: Sequence[Outcome]) -> int:
    """Samples per session (1 for single outcomes; sampled outcomes of unequal length
    count the longest, a missing sample being a miss)."""
    return max((len(r) for r in ranks if is_sampled(r)), default=1)


def sample_spread(ranks: Sequence[Outcome]) -> dict[str, dict[str, float]]:
    """Per metric, the between-sample spread: the metric over all sessions computed for
    each sample index on its own, then the standard deviation (``sd``, n-1 denominator)
    of those N values, their ``min`` and ``max``.  A session with fewer samples counts a
    missing one as a miss."""
    n = n_samples(ranks)
    per_sample = []
    for j in range(n):
        col = [(r[j] if j < len(r) else None) if is_sampled(r) else r for r in ranks]
        per_sample.append({m: _mean(v) for m, v in _columns(col).items()})
    out = {}
    for m in METRICS:
        vals = np.asarray([p[m] for p in per_sample], dtype=np.float64)
        out[m] = {"sd": float(vals.std(ddof=1)) if n > 1 else 0.0,
                  "min": float(vals.min()) if n else 0.0, "max": float(vals.max()) if n else 0.0}
    return out


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


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


def summarize(ranks: Iterable[Outcome], n_boot: int = 1000, seed: int = 0,
              alpha: float = 0.05, replies: Iterable[ReplyCounts | None] | None = None) -> dict:
    """Mean of every metric with a percentile-bootstrap (1-alpha) CI over sessions, and the
    replies' validity (:func:`validity`; ``replies=None``: a row without replies).

    ``ranks`` of sampled outcomes (each a list of its samples' ranks, ``--samples N``):
    the means are over samples, and ``samples`` and ``spread`` (:func:`sample_spread`)
    are added; ``replies`` are then every sample's."""
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
    if any(is_sampled(r) for r in ranks):
        out["samples"] = n_samples(ranks)
        out["spread"] = sample_spread(ranks)
    return out


def paired_difference(ranks_a: Sequence[Outcome], ranks_b: Sequence[Outcome],
                      metric: str = "ndcg@10", n_boot: int = 1000, seed: int = 0,
                      alpha: float = 0.05) -> dict:
    """Mean of (a - b) over the same sessions, with a paired bootstrap CI and a p-value
    (sampled outcomes: each session's mean over its samples).

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
    out = bootstrap_mean(d, n_boot=n_boot, seed=seed, alpha=alpha)
    return {"metric": metric, "n": n, "diff": sum(d) / n, "lo": out["lo"], "hi": out["hi"],
            "p": out["p"]}


def to_json(summary: dict) -> dict:
    """The ``--json`` shape: ``{"n", "hr@1", ..., "mrr@10", "ci": {...}, "replies",
    "valid_rate", "hallucinations_per_reply", "short_replies"}`` rounded to 6 places (the
    validity keys ``null`` for a row without replies, or a summary stored before them);
    a summary of sampled outcomes adds ``samples`` and ``spread`` (``{metric: {"sd",
    "min", "max"}}``)."""
    out = {"n": summary["n"]}
    out.update({m: round(summary[m], 6) for m in METRICS})
    out["ci"] = {m: [round(v, 6) for v in summary["ci"][m]] for m in METRICS}
    for key in VALIDITY:
        v = summary.get(key)
        out[key] = round(v, 6) if isinstance(v, float) else v
    if summary.get("spread"):
        out["samples"] = summary.get("samples")
        out["spread"] = {m: {k: round(v, 6) for k, v in summary["spread"][m].items()}
                         for m in METRICS}
    return out




#: the statistics of the between-sample spread, per metric (``spread.<metric>.<stat>``)
SPREAD_STATS = ("sd", "min", "max")
#: the title and caption of the between-sample spread under a metric table: the CLI's table
#: and the Markdown / LaTeX exports say the same
SPREAD_TITLE = "between-sample spread: sd of each metric over the samples"
SPREAD_CAPTION = ("each metric computed per sample, then the standard deviation of those N "
                  "values: beside the CIs above, it tells a hint's effect from sampling noise")


def has_spread(summaries: Iterable[dict | None]) -> bool:
    """Some summary is of sampled outcomes (``--samples N``: it carries ``spread``)."""
    return any(s and s.get("spread") for s in summaries)


def spread_columns() -> list[str]:
    """The export columns of the between-sample spread: ``samples``, then
    ``<metric>_sd``, ``<metric>_min``, ``<metric>_max`` per metric."""
    return ["samples", *(f"{m}_{k}" for m in METRICS for k in SPREAD_STATS)]


def spread_values(summary: dict | None, fmt=lambda v: v) -> list:
    """The :func:`spread_columns` of ``summary``: N and every statistic (through ``fmt``),
    or ``""`` in each for a summary without samples."""
    if not summary or not summary.get("spread"):
        return [""] * len(spread_columns())
    return [summary.get("samples"), *(fmt(summary["spread"][m][k]) for m in METRICS
                                      for k in SPREAD_STATS)]


def spread_cells(summary: dict) -> list[str]:
    """The table cells of a sampled summary's spread: N, then each metric's sd."""
    return [str(summary.get("samples")), *(f"{summary['spread'][m]['sd']:.3f}"
                                           for m in METRICS)]


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


#: how :func:`format_table` writes a mean and its CI in a cell: ``auto`` picks ``bounds``
#: when every column fits the width it is rendered at, else ``pm``
CI_FORMS = ("auto", "bounds", "pm")
#: the narrowest the name column is counted as when :func:`format_table` decides whether the
#: ``bounds`` form fits (longer names fold onto more lines)
NAME_MIN_WIDTH = 12


def ci_cell(mean: float, lo: float, hi: float, form: str = "bounds", signed: bool = False) -> str:
    """A mean and its CI as table text.

    ``bounds``: ``0.240 [0.155,0.325]`` -- the exact bounds; in a narrow column the bounds
    wrap under the mean as a second line.  ``pm``: ``0.240 ±0.085``, half the CI's width
    (a percentile-bootstrap CI need not be symmetric: the exact bounds are in ``--json``).
    ``signed``: a ``+`` on positive numbers (differences).
    """
    f = "{:+.3f}" if signed else "{:.3f}"
    if form == "pm":
        return f"{f.format(mean)} ±{(hi - lo) / 2:.3f}"
    if form != "bounds":
        raise ValueError(f"unknown CI form {form!r} (one of: bounds, pm)")
    return f"{f.format(mean)} [{f.format(lo)},{f.format(hi)}]"


class MetricTable:
    """The renderable :func:`format_table` returns: it writes the CIs in the form that fits
    the width it is rendered at (a terminal, a file, a widget), so that no CI is cut."""

    def __init__(self, rows: dict[str, dict], title: str | None = None,
                 baseline: str | None = None, paired: dict[str, dict] | None = None,
                 ci: str = "auto", validity: bool = True):
        if ci not in CI_FORMS:
            raise ValueError(f"unknown CI form {ci!r} (one of: {', '.join(CI_FORMS)})")
        self.rows, self.title, self.baseline = rows, title, baseline
        self.paired, self.ci, self.validity = paired or None, ci, validity

    # -- the cells -----------------------------------------------------------------------------
    def _headers(self) -> list[str]:
        heads = ["run / policy", "n", *(m.upper() for m in METRICS)]
        if self.paired:
            metric = next(iter(self.paired.values()))["metric"].upper()
            heads.append(f"Δ{metric} vs {self.baseline}")
        return heads

    def _cells(self, name: str, s: dict, form: str) -> list[str]:
        cells = [name, str(s["n"])]
        cells += [ci_cell(s[m], *s["ci"][m], form=form) for m in METRICS]
        if self.paired:
            p = self.paired.get(name)
            cells.append("—" if not p else ci_cell(p["diff"], p["lo"], p["hi"], form=form,
                                                    signed=True))
        return cells

    def width_needed(self, form: str) -> int:
        """The narrowest the metrics table can be in ``form`` without cutting a word of any
        cell or heading, the name column counted at most :data:`NAME_MIN_WIDTH` wide."""
        from rich.cells import cell_len

        def longest_word(s: str) -> int:
            return max((cell_len(w) for w in str(s).split()), default=0)

        columns = list(zip(self._headers(),
                           *(self._cells(n, s, form) for n, s in self.rows.items())))
        widths = [max(longest_word(c) for c in col) for col in columns]
        widths[0] = min(widths[0], NAME_MIN_WIDTH)
        return sum(w + 2 for w in widths) + len(widths) + 1   # padding, then the rules

    def form_for(self, width: int) -> str:
        """``bounds`` when it fits in ``width`` columns, else ``pm``."""
        if self.ci != "auto":
            return self.ci
        return "bounds" if self.width_needed("bounds") <= width else "pm"

    # -- rendering ---------------------------------------------------------------------------
    def renderable(self, form: str):
        """Both tables in ``form`` as one rich renderable."""
        from rich.console import Group
        from rich.table import Table

        from re2llm_tui.safe_text import text

        caption = ("±: half the width of the bootstrap CI (exact bounds: --json)"
                   if form == "pm" else None)
        table = Table(title=text(self.title, oneline=True) if self.title is not None else None,
                      caption=caption)
        heads = self._headers()
        table.add_column(heads[0], style="bold", overflow="fold")
        for head in heads[1:]:
            table.add_column(text(head, oneline=True), justify="right", overflow="fold")
        for name, s in self.rows.items():
            cells = self._cells(name, s, form)
            table.add_row(text(name, oneline=True), *cells[1:])
        tables = [table]
        spread = self.spread_table()
        if spread is not None:
            tables.append(spread)
        if not self.validity:
            return Group(*tables)
        replies = Table(caption="valid: share of listed items that match a candidate; "
                                "<10 valid: replies listing fewer than 10 valid items")
        replies.add_column("run / policy", style="bold", overflow="fold")
        for head in ("replies", "valid", "halluc/reply", "<10 valid"):
            replies.add_column(head, justify="right")
        for name, s in self.rows.items():
            replies.add_row(text(name, oneline=True), str(s.get("replies") or "—"),
                            *validity_cells(s))
        return Group(*tables, replies)

    def spread_table(self):
        """The between-sample spread of the rows of sampled outcomes (``--samples N``), under
        the metrics: per metric the standard deviation of its N per-sample values; None
        when no row has samples."""
        from rich.table import Table

        from re2llm_tui.safe_text import text

        rows = {name: s for name, s in self.rows.items() if s.get("spread")}
        if not rows:
            return None
        table = Table(title=SPREAD_TITLE, caption=SPREAD_CAPTION + " (min and max: --json)")
        table.add_column("run / policy", style="bold", overflow="fold")
        table.add_column("samples", justify="right")
        for m in METRICS:
            table.add_column(m.upper(), justify="right")
        for name, s in rows.items():
            table.add_row(text(name, oneline=True), *spread_cells(s))
        return table

    def __rich_console__(self, console, options):
        yield self.renderable(self.form_for(options.max_width))

    def __rich_measure__(self, console, options):
        from rich.measure import Measurement

        return Measurement.get(console, options,
                               self.renderable(self.form_for(options.max_width)))


def format_table(rows: dict[str, dict], title: str | None = None,
                 baseline: str | None = None, paired: dict[str, dict] | None = None,
                 ci: str = "auto", validity: bool = True) -> MetricTable:
    """Two rich tables as one renderable: the metrics, one row per named summary, each metric
    a mean with its CI (:func:`ci_cell`); under it the replies' validity, the same rows: how
    many replies, the valid-output rate, hallucinations per reply and replies with fewer
    than 10 valid items ("—" for a row without replies).  Two tables, so that both read at
    80 columns.  ``validity=False``: the metrics table alone.

    The CIs are never cut: with ``ci="auto"`` the table is laid out at render time, for the
    width it gets (a terminal, a widget, 80 columns for a file or a CI log): ``mean [lo,hi]``
    where that fits (on one line when wide, the bounds on a second line when not), else the
    compact ``mean ±half-width``, the half-width of the CI (see the caption).
    ``ci="bounds"`` or ``"pm"`` forces one form.  A paired difference (``paired``: name ->
    :func:`paired_difference`) is a last column, signed, in the same form.

    Names, the title and the baseline are data (file names, model strings, hint texts): they
    are passed as :func:`re2llm_tui.safe_text.text`, never parsed as markup.
    """
    return MetricTable(rows, title=title, baseline=baseline, paired=paired, ci=ci,
                       validity=validity)
