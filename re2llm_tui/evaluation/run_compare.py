"""Comparisons of stored runs: shared sessions, metric rows, paired differences, config diffs,
and training curves aligned by step.

The computation is here, the reading in :mod:`re2llm_tui.store.catalog`; no UI code.  The
CLI (``re2llm-tui runs compare|curves``) and the TUI's Runs screen call:

* :func:`compare_runs` ``(db, refs, metric="ndcg@10", n_boot=1000, seed=0) -> Comparison``
  -- the runs restricted to the sessions they all scored.  A :class:`Comparison` has
  ``records`` (catalog records), ``labels`` (ref -> row name), ``sessions`` (the shared
  session ids, sorted), ``dropped`` (ref -> scored sessions outside the shared set),
  ``ranks`` (ref -> target ranks, aligned with ``sessions``), ``rows`` (row name ->
  :func:`~re2llm_tui.evaluation.metrics.summarize` over the shared sessions), ``paired``
  (row name -> :func:`~re2llm_tui.evaluation.metrics.paired_difference` of that run minus
  the first, for ``metric``), ``config_diff`` (field -> one value per run, only the fields
  that differ); :meth:`Comparison.table` (a renderable for rich or Textual),
  :meth:`Comparison.per_session` (every shared session's rank and metric in each run),
  :meth:`Comparison.sessions_where` (sessions where one run beats another, by how much,
  for a drill-down into session detail; the records' ``dataset`` / ``split`` locate them),
  :meth:`Comparison.wins` (wins / losses / ties against the first run) and
  :meth:`Comparison.to_json` (the ``runs compare --json`` shape).
* :func:`compare` -- the same from records and outcomes already read (pure).
* :func:`config_diff` ``(records) -> {field: [value per run]}``.
* :func:`train_curves` ``(db, refs, tag="charts/reward_mean") -> dict`` and
  :func:`align_curves` (pure): several training runs' curves of one scalar on a common
  step axis, for an overlay chart: ``{"tag", "steps": [...], "series": {ref: [value or
  None per step]}}``.

Every run is compared on the same sessions in the same order and every bootstrap uses the
same resamples (``seed``), so the paired difference is a plain percentile bootstrap of the
per-session differences (:func:`~re2llm_tui.evaluation.metrics.paired_difference`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from re2llm_tui.errors import UserError
from re2llm_tui.evaluation.metrics import METRICS, VALIDITY, paired_difference, \
    session_value, summarize

#: the columns of a run's configuration that a config diff compares (then every param)
CONFIG_FIELDS = ("kind", "dataset", "split", "model", "prompt_version", "kb_version",
                 "hint_id", "hint_text")
DEFAULT_METRIC = "ndcg@10"


def check_metric(metric: str) -> str:
    m = str(metric).strip().lower()
    if m not in METRICS:
        raise UserError(f"unknown metric {metric!r} (one of: {', '.join(METRICS)})")
    return m


def label_of(record: dict) -> str:
    """A run's row name in tables: ``<ref> <name>`` (unique: the ref is)."""
    return f"{record['ref']} {record['name']}"


def config_fields(record: dict) -> dict:
    """A run's configuration as flat fields: :data:`CONFIG_FIELDS`, then ``params.<key>``
    (training runs: their PPO config) for every key."""
    out = {k: record.get(k) for k in CONFIG_FIELDS}
    if record.get("kind") == "train":
        out["seed"] = record.get("seed")
        out["total_steps"] = record.get("total_steps")
    for key, value in sorted((record.get("params") or {}).items()):
        out[f"params.{key}"] = value
    return out


def config_diff(records: list[dict]) -> dict[str, list]:
    """field -> the value of each run (``None`` where a run lacks it), for the fields whose
    values are not all equal; fields are in :func:`config_fields` order."""
    configs = [config_fields(r) for r in records]
    keys: list[str] = []
    for c in configs:
        keys += [k for k in c if k not in keys]
    out = {}
    for key in keys:
        values = [c.get(key) for c in configs]
        if any(v != values[0] for v in values[1:]):
            out[key] = values
    return out


@dataclass
class Comparison:
    records: list[dict]
    metric: str
    sessions: list[str]
    dropped: dict[str, int]
    ranks: dict[str, list]
    rows: dict[str, dict]
    paired: dict[str, dict]
    config_diff: dict[str, list]
    n_boot: int = 1000
    seed: int = 0
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def refs(self) -> list[str]:
        return [r["ref"] for r in self.records]

    @property
    def baseline(self) -> str:
        return self.labels[self.refs[0]]

    def table(self, title: str | None = None):
        """The metric table with the paired-difference column (a rich renderable;
        :func:`~re2llm_tui.evaluation.metrics.format_table`)."""
        from re2llm_tui.evaluation.metrics import format_table

        first = self.records[0]
        if title is None:
            title = (f"{first['dataset']}/{first['split']} — {len(self.sessions)} shared "
                     f"sessions; Δ{self.metric.upper()}: paired bootstrap "
                     f"({self.n_boot} resamples, seed {self.seed}) vs {first['ref']}")
        return format_table(self.rows, title=title, baseline=first["ref"],
                            paired=self.paired)

    def per_session(self) -> list[dict]:
        """Every shared session: ``{"session_id", "ranks": {ref: rank}, "values": {ref:
        metric value}}``, in session order."""
        out = []
        for i, sid in enumerate(self.sessions):
            ranks = {ref: self.ranks[ref][i] for ref in self.refs}
            out.append({"session_id": sid, "ranks": ranks,
                        "values": {ref: session_value(r, self.metric)
                                   for ref, r in ranks.items()}})
        return out

    def sessions_where(self, better: str, worse: str, metric: str | None = None) -> list[dict]:
        """The shared sessions where run ``better`` scores higher than run ``worse`` on
        ``metric`` (default: the comparison's): ``{"session_id", "rank_better",
        "rank_worse", "gain"}``, the largest gain first (then session order)."""
        metric = check_metric(metric or self.metric)
        for ref in (better, worse):
            if ref not in self.ranks:
                raise UserError(f"run {ref} is not in this comparison")
        out = []
        for i, sid in enumerate(self.sessions):
            rb, rw = self.ranks[better][i], self.ranks[worse][i]
            gain = session_value(rb, metric) - session_value(rw, metric)
            if gain > 0:
                out.append({"session_id": sid, "rank_better": rb, "rank_worse": rw,
                            "gain": gain})
        out.sort(key=lambda d: -d["gain"])
        return out

    def wins(self, ref: str) -> dict:
        """How many shared sessions run ``ref`` wins / ties / loses against the first run."""
        first = self.refs[0]
        w = len(self.sessions_where(ref, first))
        losses = len(self.sessions_where(first, ref))
        return {"wins": w, "losses": losses, "ties": len(self.sessions) - w - losses}

    def to_json(self) -> dict:
        from re2llm_tui.evaluation.metrics import to_json

        runs = []
        for rec in self.records:
            ref = rec["ref"]
            label = self.labels[ref]
            p = self.paired.get(label)
            runs.append({
                "ref": ref, "id": rec["id"], "name": rec["name"], "kind": rec["kind"],
                "dropped": self.dropped[ref], "metrics": to_json(self.rows[label]),
                "paired": None if p is None else {k: (round(v, 6) if isinstance(v, float)
                                                      else v) for k, v in p.items()},
                "wins": None if ref == self.refs[0] else self.wins(ref)})
        return {"metric": self.metric, "baseline": self.refs[0], "n_shared": len(self.sessions),
                "n_boot": self.n_boot, "seed": self.seed, "runs": runs,
                "config_diff": {k: v for k, v in self.config_diff.items()}}


#: the most bootstrap resamples a comparison draws (each holds an index per session)
MAX_RESAMPLES = 100_000


def compare(records: list[dict], outcomes: dict[str, dict], *, metric: str = DEFAULT_METRIC,
            n_boot: int = 1000, seed: int = 0) -> Comparison:
    """Compare output runs (catalog records, the first is the baseline) on the sessions they
    all scored; ``outcomes``: ref -> {session id: rank}.  One-line errors for fewer than two
    runs, a repeated run, a training run, runs on different datasets, no shared session."""
    metric = check_metric(metric)
    if n_boot < 1:
        raise UserError(f"--resamples must be >= 1 (got {n_boot})")
    if n_boot > MAX_RESAMPLES:      # memory grows with resamples x sessions
        raise UserError(f"--resamples must be at most {MAX_RESAMPLES:,} (got {n_boot:,})")
    if len(records) < 2:
        raise UserError("compare needs at least two runs")
    refs = [r["ref"] for r in records]
    repeated = sorted({r for r in refs if refs.count(r) > 1})
    if repeated:
        raise UserError(f"run {repeated[0]} is named twice")
    for r in records:
        if r["kind"] == "train":
            raise UserError(f"run {r['ref']} is a training run: compare training runs with "
                            "`re2llm-tui runs curves`")
    datasets = sorted({r["dataset"] for r in records})
    if len(datasets) > 1:
        raise UserError(f"runs {', '.join(refs)} are on different datasets "
                        f"({', '.join(datasets)}): they share no sessions")
    shared = set(outcomes[refs[0]])
    for ref in refs[1:]:
        shared &= set(outcomes[ref])
    if not shared:
        splits = sorted({r["split"] for r in records})
        raise UserError(f"runs {', '.join(refs)} share no scored session "
                        f"({records[0]['dataset']}, split {'/'.join(splits)})")
    sessions = sorted(shared)
    labels = {r["ref"]: label_of(r) for r in records}
    ranks = {ref: [outcomes[ref][s] for s in sessions] for ref in refs}
    dropped = {ref: len(outcomes[ref]) - len(sessions) for ref in refs}
    rows: dict[str, dict] = {}
    for rec in records:
        ref = rec["ref"]
        summary = summarize(ranks[ref], n_boot=n_boot, seed=seed)
        stored = rec.get("metrics") or {}
        if not dropped[ref] and stored.get("n") == len(sessions):
            # the same sessions as stored: the replies' validity still holds
            summary.update({k: stored.get(k) for k in VALIDITY})
        rows[labels[ref]] = summary
    paired = {labels[ref]: paired_difference(ranks[ref], ranks[refs[0]], metric=metric,
                                             n_boot=n_boot, seed=seed)
              for ref in refs[1:]}
    return Comparison(records=list(records), metric=metric, sessions=sessions,
                      dropped=dropped, ranks=ranks, rows=rows, paired=paired,
                      config_diff=config_diff(records), n_boot=n_boot, seed=seed,
                      labels=labels)


def compare_runs(db, refs, *, metric: str = DEFAULT_METRIC, n_boot: int = 1000,
                 seed: int = 0) -> Comparison:
    """:func:`compare` of the stored runs ``refs`` (``5``, ``"5"``; the first is the
    baseline)."""
    from re2llm_tui.store import catalog

    metric = check_metric(metric)
    records = [catalog.get_record(db, ref) for ref in refs]
    outcomes = {r["ref"]: catalog.run_outcomes(db, r["id"]) for r in records
                if r["kind"] != "train"}
    return compare(records, outcomes, metric=metric, n_boot=n_boot, seed=seed)


# --------------------------------------------------------------------------- training curves

def align_curves(curves: dict[str, list[tuple[int, float]]]) -> dict:
    """Curves (ref -> ``[(step, value), ...]``) on one step axis: ``{"steps": [...],
    "series": {ref: [value or None at each step]}}`` (the union of the steps, ascending)."""
    steps = sorted({int(s) for points in curves.values() for s, _ in points})
    series = {}
    for ref, points in curves.items():
        at = {int(s): v for s, v in points}
        series[ref] = [at.get(s) for s in steps]
    return {"steps": steps, "series": series}


def train_curves(db, refs, tag: str = "charts/reward_mean") -> dict:
    """Training runs' curves of scalar ``tag``, aligned by step (:func:`align_curves`), with
    ``tag`` and ``labels`` (ref -> run name)."""
    from re2llm_tui.store import catalog

    records = [catalog.get_record(db, ref) for ref in refs]
    curves = {}
    for rec in records:
        if rec["kind"] != "train":
            raise UserError(f"run {rec['ref']} is not a training run (training runs are "
                            "t<number>; see `re2llm-tui runs list --kind train`)")
        points = catalog.train_scalars(db, rec["id"], [tag]).get(tag, [])
        curves[rec["ref"]] = [(s, v) for s, v in points if isinstance(v, (int, float))]
    out = align_curves(curves)
    out["tag"] = tag
    out["labels"] = {rec["ref"]: rec["name"] for rec in records}
    return out
