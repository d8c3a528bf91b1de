"""Evaluation: does the learned hint retrieval help, and does the LLM beat a cheap baseline?

On the same sessions of a split (default ``test``), with the same LLM, prompt versions and
decoding, the rows are:

* ``no hint`` -- the release prompt as is;
* ``agent (argmax)`` -- the trained agent's most probable hint per session;
* ``random hint`` -- a uniformly random hint per session (seeded; never "no hint");
* ``best train hint`` -- the one hint with the highest mean reward on the training sessions'
  stored outcomes (the reward table); the row says how many training sessions backed it;
* ``oracle (upper bound)`` -- per session the best action in hindsight (needs every
  (session, action) outcome: ``oracle=False`` skips it and most of the calls);
* ``content ranker (no LLM)`` -- candidates ordered by cosine similarity between their
  embedding and the mean embedding of the session's items.

Every LLM row is read from the reward table of the evaluated sessions
(:class:`~re2llm_tui.utilization.rewards.LLMRewards`), so the rows share calls and a rerun costs
nothing.  Metrics: HR@{1,5,10}, NDCG@{5,10} (and MRR@10) with 95% bootstrap CIs, and the
paired bootstrap difference in NDCG@10 to ``no hint``.  Each row is stored as a run
(``kind='evaluate'``) with one item per session.

``samples`` (``--samples N``): every outcome is the mean of N samples of its request (the
reward table's ``|samples=N`` outcomes); each LLM row's metrics are the mean over samples
with the between-sample spread, its run items keep every sample's rank in ``samples``
(sample 0 in ``target_rank``), the oracle picks the best mean NDCG@10, and the paired
difference compares the sessions' means.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from re2llm_tui.data.dataset import Dataset, require
from re2llm_tui.errors import UserError

NO_HINT = "no hint"
AGENT = "agent (argmax)"
RANDOM = "random hint"
BEST = "best train hint"
ORACLE = "oracle (upper bound)"
CONTENT = "content ranker (no LLM)"
EXPORT_METRICS = ("hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10", "mrr@10")
#: reply validity in the exports (None for the content ranker, which has no replies)
VALIDITY_COLUMNS = ("valid_rate", "hallucinations_per_reply", "short_replies")


def _plain(value, dash: bool = False) -> str:
    if value is None:
        return "—" if dash else ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@dataclass
class EvalResult:
    dataset: str
    split: str
    model: str
    n: int
    rows: dict[str, dict]                       # policy -> metrics.summarize(...)
    paired: dict[str, dict]                     # policy -> paired_difference vs no hint
    ranks: dict[str, list]                      # policy -> per-session target rank (None: miss)
    actions: dict[str, list[int]]               # LLM policy -> action index per session
    run_ids: dict[str, int] = field(default_factory=dict)
    session_ids: list[str] = field(default_factory=list)
    hint_ids: list[int] = field(default_factory=list)
    kb_version: str = ""
    train_run_id: int | None = None
    best_hint: dict | None = None
    notes: list[str] = field(default_factory=list)
    selection: dict = field(default_factory=dict)    # how the sessions were chosen
    order: object = None                             # OrderReport with --permutations
    llm_calls: int = 0
    cache_hits: int = 0
    failed: int = 0
    cost: float = 0.0

    # ----------------------------------------------------------------- presentation
    def table(self):
        from re2llm_tui.evaluation.metrics import format_table

        title = f"{self.dataset}/{self.split}: {self.n} sessions"
        return format_table(self.rows, title=f"{title}, {self.model}" if self.model else title,
                            baseline=NO_HINT, paired=self.paired)

    def as_dict(self) -> dict:
        from re2llm_tui.evaluation.metrics import to_json

        return {"dataset": self.dataset, "split": self.split, "model": self.model, "n": self.n,
                "kb_version": self.kb_version, "train_run_id": self.train_run_id,
                "best_hint": self.best_hint, "notes": self.notes,
                "selection": self.selection,
                "order": self.order.as_dict() if self.order is not None else None,
                "llm_calls": self.llm_calls, "cache_hits": self.cache_hits,
                "failed": self.failed, "cost": round(self.cost, 6), "run_ids": self.run_ids,
                "rows": {name: {**to_json(s), "paired_ndcg@10": _round_paired(self.paired.get(name))}
                         for name, s in self.rows.items()}}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def to_csv(self) -> str:
        """One row per policy; with ``--samples N`` the between-sample spread follows the
        metrics (``samples``, ``<metric>_sd`` / ``_min`` / ``_max``; empty for the content
        ranker, which has no samples)."""
        from re2llm_tui.evaluation.metrics import has_spread, spread_columns, spread_values
        from re2llm_tui.safe_files import spreadsheet_cell

        sampled = has_spread(self.rows.values())
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["policy", "n"] + [c for m in EXPORT_METRICS for c in (m, f"{m}_lo", f"{m}_hi")]
                   + (spread_columns() if sampled else [])
                   + ["d_ndcg@10", "d_lo", "d_hi", "p"] + list(VALIDITY_COLUMNS))
        for name, s in self.rows.items():
            p = self.paired.get(name)
            w.writerow([spreadsheet_cell(name), s["n"]]
                       + [f"{v:.6f}" for m in EXPORT_METRICS for v in (s[m], *s["ci"][m])]
                       + (spread_values(s, "{:.6f}".format) if sampled else [])
                       + ([f"{p['diff']:.6f}", f"{p['lo']:.6f}", f"{p['hi']:.6f}", f"{p['p']:.4f}"]
                          if p else ["", "", "", ""])
                       + [_plain(s.get(c)) for c in VALIDITY_COLUMNS])
        return buf.getvalue()

    def to_markdown(self) -> str:
        head = ["policy", "n"] + [m.upper() for m in EXPORT_METRICS] + [
            "ΔNDCG@10 vs no hint", "valid output", "hallucinations / reply", "replies < 10 valid"]
        lines = [f"## {self.dataset}/{self.split}: {self.n} sessions, model `{self.model}`", "",
                 "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, s in self.rows.items():
            p = self.paired.get(name)
            cells = [name, str(s["n"])] + [
                f"{s[m]:.3f} [{s['ci'][m][0]:.3f}, {s['ci'][m][1]:.3f}]" for m in EXPORT_METRICS]
            cells.append(f"{p['diff']:+.3f} [{p['lo']:+.3f}, {p['hi']:+.3f}]" if p else "—")
            cells += [_plain(s.get(c), dash=True) for c in VALIDITY_COLUMNS]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("95% bootstrap confidence intervals in brackets; Δ is the paired bootstrap "
                     "difference on the same sessions.")
        lines.extend(self._markdown_spread())
        if self.order is not None:
            lines.append("")
            lines.extend(self.order.lines())
        for note in self.notes:
            lines.append(f"- {note}")
        return "\n".join(lines) + "\n"

    def _markdown_spread(self) -> list[str]:
        """The between-sample spread under the Markdown table, as the CLI shows it under
        its table (nothing when no row has samples)."""
        from re2llm_tui.evaluation.metrics import SPREAD_CAPTION, SPREAD_TITLE, spread_cells

        rows = {name: s for name, s in self.rows.items() if s.get("spread")}
        if not rows:
            return []
        head = ["policy", "samples"] + [m.upper() for m in EXPORT_METRICS]
        lines = ["", SPREAD_TITLE, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join([name, *spread_cells(s)]) + " |" for name, s in rows.items()]
        return lines + ["", SPREAD_CAPTION + " (min and max: the .csv and .json exports)."]

    def export(self, path: str | Path, workspace=None) -> Path:
        """Write ``.md``, ``.csv`` or ``.json`` by the file's extension (atomically; never
        onto ``workspace``, its side files or an SQLite file: one line)."""
        from re2llm_tui.safe_files import atomic_write

        path = Path(path)
        writers = {".md": self.to_markdown, ".csv": self.to_csv, ".json": self.to_json}
        writer = writers.get(path.suffix.lower())
        if writer is None:
            raise UserError(f"--out {path}: unknown format {path.suffix or '(none)'!r}; "
                            "use .md, .csv or .json")
        atomic_write(path, writer(), workspace, what="--out")
        return path


def _round_paired(p: dict | None) -> dict | None:
    if not p:
        return None
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in p.items()}


# --------------------------------------------------------------------------- helpers

def _db_file(db) -> str | None:
    for _, name, file in db.execute("PRAGMA database_list"):
        if name == "main":
            return file or None
    return None


def _train_with_outcomes(db, ds: Dataset, model: str) -> list:
    """The training sessions with a stored reward outcome of ``model`` (read by id: a
    large training split is not read for the few sessions that have outcomes)."""
    from re2llm_tui.store.outcomes import sessions_with_outcomes

    return ds.by_ids(sessions_with_outcomes(db, ds.name, model, prefix="train-"))


def best_train_hint(db, client, ds: Dataset, actions: Sequence[tuple[int, str]],
                    rank_by: str = "reply", samples: int = 1) -> dict | None:
    """The hint with the highest mean stored reward on the training sessions.

    Only outcomes already in the reward table count (nothing is computed); an action is
    eligible when at least one training session has both its outcome and the no-hint one.
    """
    from re2llm_tui.utilization.rewards import LLMRewards

    if len(actions) < 2:
        return None
    train = _train_with_outcomes(db, ds, client.model)   # the others add nothing
    if not train:
        return None
    table = LLMRewards(client, train, actions, dataset=ds.name, db=db, rank_by=rank_by,
                       samples=samples).table()
    best = None
    for a in range(1, len(actions)):
        col = table[:, a]
        known = np.isfinite(col)
        if not known.any():
            continue
        mean = float(col[known].mean())
        if best is None or mean > best["mean_reward"]:
            best = {"action": a, "hint_id": actions[a][0], "mean_reward": mean,
                    "n_train": int(known.sum())}
    return best


# --------------------------------------------------------------------------- evaluate

#: the most candidate shuffles ``--permutations`` asks for (each re-asks the LLM on every
#: session of two rows, and keeps its ranks)
MAX_PERMUTATIONS = 100


def check_samples(samples: int | None, permutations: int = 0) -> int:
    """``--samples`` of an evaluation: 1 to 50 (:func:`re2llm_tui.llm.decoding.check_samples`),
    and not with ``--permutations`` (whose shuffles ask one sample each): one line."""
    from re2llm_tui.llm.decoding import check_samples as bounded

    samples = bounded(samples)
    if samples > 1 and permutations:
        raise UserError("--samples and --permutations cannot be combined (the candidate "
                        "shuffles ask one sample each): run them apart")
    return samples


def check_permutations(permutations: int) -> int:
    """``--permutations``: 0 to :data:`MAX_PERMUTATIONS` (one-line UserError)."""
    if permutations < 0:
        raise UserError(f"--permutations must be >= 0 (got {permutations})")
    if permutations > MAX_PERMUTATIONS:
        raise UserError(f"--permutations must be at most {MAX_PERMUTATIONS} (got "
                        f"{permutations:,}; each re-asks the LLM on every session)")
    return permutations


@dataclass
class EvalPlan:
    """Which outcomes an evaluation reads: the KB's actions, each row's action per session
    and the (session, action) outcomes the rows need (``needed``: what is asked)."""

    kb_version: str
    actions: list[tuple[int, str]]
    run: dict | None                 # the trained agent's run (None: no agent row)
    agent: object                    # its argmax action per session, or None
    random_actions: np.ndarray
    best: dict | None                # the best train hint (:func:`best_train_hint`)
    needed: np.ndarray               # (sessions x actions) bool
    notes: list[str] = field(default_factory=list)

    @property
    def hint_ids(self) -> list[int]:
        return [h for h, _ in self.actions]


def plan_evaluation(db, client, ds: Dataset, sessions, *, seed: int = 0, oracle: bool = True,
                    train_run: int | None = None, rank_by: str = "reply", samples: int = 1,
                    choose_agent: bool = True) -> EvalPlan:
    """The one plan of an evaluation, run by :func:`evaluate` and priced by its estimate
    (:func:`re2llm_tui.costs.dry_run.evaluate`): the agent's, the seeded random and the best
    train hint's actions, and every action when ``oracle``.  ``choose_agent=False`` leaves
    the agent out (an estimate with the oracle asks every action anyway)."""
    from re2llm_tui.kb import KnowledgeBase

    kb_version, actions = KnowledgeBase(db, ds).actions()
    n, n_actions = len(sessions), len(actions)
    notes: list[str] = []
    run, agent = _agent_actions(db, ds, sessions, client.model, kb_version,
                                [h for h, _ in actions], train_run, notes) \
        if choose_agent else (None, None)
    rng = np.random.default_rng(seed)
    random_actions = (rng.integers(1, n_actions, size=n) if n_actions > 1
                      else np.zeros(n, dtype=np.int64))
    best = best_train_hint(db, client, ds, actions, rank_by, samples)
    needed = _needed(n, n_actions, random_actions, agent, best, oracle)
    return EvalPlan(kb_version, actions, run, agent, random_actions, best, needed, notes)


def evaluate(db, ds: Dataset, split: str = "test", *, client=None, model: str | None = None,
             limit: int | None = None, train_run: int | None = None,
             oracle: bool = True, seed: int = 0, n_boot: int = 1000, store: bool = True,
             workers: int = 1, progress: Callable | None = None,
             rank_by: str = "reply", sample: int | None = None,
             permutations: int = 0, content_only: bool = False,
             samples: int = 1) -> EvalResult:
    """Compare the policies on the sessions of ``split`` (see the module docstring).

    ``client``: an :class:`~re2llm_tui.llm.client.LLMClient` (default: one for ``model`` on
    this workspace).  The outcomes the rows need are computed a session at a time, in
    ``workers`` processes; ``progress`` gets a
    :class:`~re2llm_tui.utilization.rewards.PrefillProgress` as they arrive.  Raises
    :class:`~re2llm_tui.control.RunStop` (budget or stop request) after storing everything
    finished; rerun to resume.  Raises :class:`~re2llm_tui.llm.outcomes.NothingWorked` when
    every LLM call failed (its rows stored ``failed``, the one line naming the most common
    error).
    """
    from re2llm_tui.evaluation.metrics import paired_difference, summarize
    from re2llm_tui.llm.client import LLMClient
    from re2llm_tui.utilization.rewards import LLMRewards

    from re2llm_tui.evaluation.sampling import selection_params

    ds = require(ds)
    check_permutations(permutations)
    samples = check_samples(samples, permutations)
    sessions = ds.select(split, limit=limit, sample=sample, seed=seed)
    selection = selection_params(sessions, limit=limit, sample=sample, seed=seed)
    if content_only:
        return _content_only(db, ds, split, sessions, selection, n_boot, seed, store)
    own_client = client is None
    if client is None:
        client = LLMClient(_db_file(db), model=model)
    notes: list[str] = []
    from re2llm_tui.store.calls import last_call_id

    since = last_call_id(db)
    try:
        plan = plan_evaluation(db, client, ds, sessions, seed=seed, oracle=oracle,
                               train_run=train_run, rank_by=rank_by, samples=samples)
        kb_version, actions, hint_ids = plan.kb_version, plan.actions, plan.hint_ids
        run, agent, random_actions, best = plan.run, plan.agent, plan.random_actions, plan.best
        n, n_actions = len(sessions), len(actions)
        notes.extend(plan.notes)
        _note_best(best, n_actions, notes)

        # every outcome a row needs, computed a session at a time
        source = LLMRewards(client, sessions, actions, dataset=ds.name, db=db, rank_by=rank_by,
                            samples=samples)
        needed = plan.needed
        if not oracle:
            notes.append("oracle: skipped (oracle=False)")
        try:
            source.prefill(progress=progress, wanted=needed, workers=workers)
        finally:
            source.close()
        failed_line = _nothing_worked(db, client, source, needed, since)
        if samples > 1:
            from re2llm_tui.evaluation.recommend import samples_note

            notes.append(f"--samples {samples}: each outcome is the mean of {samples} samples; "
                         "the spread between samples is beside the CIs")
            if samples_note(client, samples):
                notes.append(samples_note(client, samples))
        missing = needed & ~np.isfinite(source.ndcg)
        if missing.any() and failed_line is None:
            notes.append(f"{int(missing.sum())} outcome(s) failed after retries: scored as misses")

        choices = _choices(source, n, n_actions, agent, random_actions, best, oracle)
        ranks, rankings = _outcomes(source, choices)
        ranks[CONTENT], rankings[CONTENT] = _content_row(sessions, db)
        rows = {name: summarize(r, n_boot=n_boot, seed=seed, replies=source.replies_of(
                    choices[name]) if name in choices else None) for name, r in ranks.items()}
        paired = {name: paired_difference(r, ranks[NO_HINT], "ndcg@10", n_boot=n_boot, seed=seed)
                  for name, r in ranks.items() if name != NO_HINT}
        st = source.stats()
        result = EvalResult(
            dataset=ds.name, split=split, model=client.model, n=n, rows=rows, paired=paired,
            ranks=ranks, actions={k: [int(a) for a in v] for k, v in choices.items()},
            session_ids=[s.id for s in sessions], hint_ids=hint_ids, kb_version=kb_version,
            train_run_id=run["id"] if run else None, best_hint=best, notes=notes,
            llm_calls=int(st["llm_calls"]), cache_hits=int(st["cache_hits"]),
            failed=int(st["failed"]), cost=float(st["cost"]), selection=selection)
        if failed_line is not None:
            from re2llm_tui.llm.outcomes import NothingWorked

            marked = ""
            if store:
                _store_rows(db, result, client, sessions, actions, choices, rankings, source,
                            seed, rank_by, failed=failed_line, samples=samples)
                ids = [str(rid) for name, rid in result.run_ids.items() if name != CONTENT]
                marked = f"; evaluation run{'s' if len(ids) > 1 else ''} " \
                         f"{', '.join(ids)} marked failed"
            raise NothingWorked(failed_line + marked)
        if permutations:
            result.order = _order_rows(client, db, ds, sessions, actions, choices, ranks,
                                       permutations, seed, workers, rank_by, progress)
        if store:
            _store_rows(db, result, client, sessions, actions, choices, rankings, source, seed,
                        rank_by, samples=samples)
            if result.order is not None:
                _store_order_runs(db, result, client, sessions, n_boot, seed, rank_by)
        return result
    finally:
        if own_client:
            client.close()


def _nothing_worked(db, client, source, needed, since_id: int) -> str | None:
    """The one line of an evaluation in which every LLM call failed (no outcome a row
    needs is known, and calls failed), else None (:mod:`re2llm_tui.llm.outcomes`)."""
    from re2llm_tui.llm.outcomes import CallOutcomes, failed_call_errors

    known = int((needed & np.isfinite(source.ndcg)).sum())
    failed = int(source.stats()["failed"])
    if known or not failed:
        return None
    outcomes = CallOutcomes.of(ok=known, errors=failed_call_errors(
        db, since_id=since_id, model=client.model), failed=failed)
    return outcomes.line() if outcomes.nothing_worked() else None


def _agent_actions(db, ds: Dataset, sessions, model: str, kb_version: str, hint_ids,
                   train_run: int | None, notes: list[str]):
    """The trained agent's argmax hint per session: ``(its run, actions)``, or
    ``(None, None)`` when there is no agent (said in ``notes``)."""
    from re2llm_tui.store.train_runs import latest_run
    from re2llm_tui.utilization.agent import Policy
    from re2llm_tui.utilization.session_encoder import encode_sessions

    run = latest_run(db, ds.name, model, run_id=train_run)
    if run is None and train_run is None:
        run = latest_run(db, ds.name)
        if run is not None:
            notes.append(f"agent: training run {run['id']} was trained with rewards from "
                         f"{run['model']}, evaluated here with {model}")
    if run is None:
        notes.append(f"agent: no trained agent for {ds.name} (run `re2llm-tui train "
                     f"--dataset {ds.name}` first); its row is left out")
        return None, None
    policy = Policy.load(run["checkpoint"], kb_version=kb_version, hint_ids=hint_ids)
    if run["status"] != "done":
        notes.append(f"agent: training run {run['id']} is {run['status']} at step "
                     f"{run['step']} of {run['total_steps']}")
    return run, policy.act(encode_sessions(sessions, db=db))


def _note_best(best: dict | None, n_actions: int, notes: list[str]) -> None:
    if best is None and n_actions > 1:
        notes.append("best train hint: no training rewards stored yet (run `train`); its row "
                     "is left out")
    elif best is not None:
        notes.append(f"best train hint: hint {best['hint_id']} (mean train reward "
                     f"{best['mean_reward']:+.4f} over {best['n_train']} training sessions "
                     "with stored outcomes)")


def _needed(n: int, n_actions: int, random_actions, agent, best, oracle: bool) -> np.ndarray:
    """The (session, action) outcomes the rows read: no hint, the random, agent and best
    hints, and every action for the oracle."""
    needed = np.zeros((n, n_actions), dtype=bool)
    needed[:, 0] = True
    needed[np.arange(n), random_actions] = True
    if agent is not None:
        needed[np.arange(n), agent] = True
    if best is not None:
        needed[:, best["action"]] = True
    if oracle:
        needed[:, :] = True
    return needed


def _known_rank(source, i: int, a: int):
    return source.target_rank(i, a) if np.isfinite(source.ndcg[i, a]) else None


def _known_outcome(source, i: int, a: int):
    """The outcome a row scores: the target rank (None: a miss or a failed call), or with
    samples the list of the samples' ranks (a failed outcome: every sample a miss)."""
    if getattr(source, "samples", 1) > 1:
        return source.outcome(i, a) if np.isfinite(source.ndcg[i, a]) \
            else [None] * source.samples
    return _known_rank(source, i, a)


def _choices(source, n: int, n_actions: int, agent, random_actions, best,
             oracle: bool) -> dict[str, np.ndarray]:
    """Each LLM row's action per session."""
    choices: dict[str, np.ndarray] = {NO_HINT: np.zeros(n, dtype=np.int64)}
    if agent is not None:
        choices[AGENT] = np.asarray(agent, dtype=np.int64)
    choices[RANDOM] = np.asarray(random_actions, dtype=np.int64)
    if best is not None:
        choices[BEST] = np.full(n, best["action"], dtype=np.int64)
    if oracle:
        # the best rank in hindsight (with samples: the best mean NDCG@10); ties: the
        # lowest action index (no hint first)
        def key(i, a):
            if getattr(source, "samples", 1) > 1:
                v = source.ndcg[i, a]
                return (-v if np.isfinite(v) else 1.0, a)
            r = _known_rank(source, i, a)
            return (r if r is not None else 10 ** 9, a)
        choices[ORACLE] = np.array([min(range(n_actions), key=lambda a: key(i, a))
                                    for i in range(n)], dtype=np.int64)
    return choices


def _outcomes(source, choices) -> tuple[dict[str, list], dict[str, list]]:
    """Per row: the target's rank and the ranking in each session (a failed call: a miss)."""
    ranks = {name: [_known_outcome(source, i, int(a)) for i, a in enumerate(acts)]
             for name, acts in choices.items()}
    rankings = {name: [source.ranking(i, int(a)) if np.isfinite(source.ndcg[i, int(a)])
                       else [] for i, a in enumerate(acts)]
                for name, acts in choices.items()}
    return ranks, rankings


def _order_rows(client, db, ds, sessions, actions, choices, ranks, permutations: int,
                seed: int, workers: int, rank_by: str, progress):
    """Candidate-order sensitivity of the no-hint and agent rows
    (:mod:`re2llm_tui.evaluation.order`)."""
    from re2llm_tui.evaluation.metrics import ndcg_at
    from re2llm_tui.evaluation.order import order_sensitivity

    rows = {name: choices[name] for name in (NO_HINT, AGENT) if name in choices}
    original = {name: [ndcg_at(r, 10) for r in ranks[name]] for name in rows}
    return order_sensitivity(client, db, sessions, actions, rows, dataset=ds.name,
                             original=original, permutations=permutations, seed=seed,
                             workers=workers, rank_by=rank_by, progress=progress)


def _store_order_runs(db, result: EvalResult, client, sessions, n_boot: int, seed: int,
                      rank_by: str) -> None:
    """Each (row, shuffle) of the candidate-order check as a run of its own."""
    from re2llm_tui.evaluation.metrics import summarize
    from re2llm_tui.store import runs

    for name, per_shuffle in result.order.ranks.items():
        for p, ranks in enumerate(per_shuffle):
            label = f"{name} · candidate shuffle {p + 1}/{len(per_shuffle)}"
            rid = runs.create_run(
                db, name=f"evaluate {result.dataset}/{result.split}: {label}", kind="evaluate",
                dataset=result.dataset, split=result.split, model=client.model,
                params={**result.selection, "policy": name, "permutation": p,
                        "order_seed": seed, "rank_by": rank_by, "kb_version": result.kb_version,
                        "train_run": result.train_run_id,
                        **getattr(client, "decoding_record", dict)()})
            with runs.ending(db, rid):
                for s, r in zip(sessions, ranks):
                    runs.add_run_item(db, rid, s.id, target_rank=r)
                runs.finish_run(db, rid, summarize(ranks, n_boot=n_boot, seed=seed))
            result.run_ids[label] = rid


def _content_only(db, ds: Dataset, split: str, sessions, selection: dict, n_boot: int,
                  seed: int, store: bool) -> EvalResult:
    """The content ranker alone (no LLM, no KB): seconds even on thousands of sessions."""
    from re2llm_tui.evaluation.metrics import summarize
    from re2llm_tui.store import runs

    ranks, rankings = _content_row(sessions, db)
    rows = {CONTENT: summarize(ranks, n_boot=n_boot, seed=seed)}
    result = EvalResult(dataset=ds.name, split=split, model="", n=len(sessions), rows=rows,
                        paired={}, ranks={CONTENT: ranks}, actions={},
                        session_ids=[s.id for s in sessions], selection=selection,
                        notes=["content ranker only (--content-only): no LLM call"])
    if store:
        rid = runs.create_run(db, name=f"evaluate {ds.name}/{split}: {CONTENT}",
                              kind="evaluate", dataset=ds.name, split=split, model=None,
                              params={**selection, "policy": CONTENT, "seed": seed})
        with runs.ending(db, rid):
            for s, r, rk in zip(sessions, ranks, rankings):
                runs.add_run_item(db, rid, s.id, ranking=rk, target_rank=r)
            runs.finish_run(db, rid, rows[CONTENT])
        result.run_ids[CONTENT] = rid
    return result


def _content_row(sessions, db) -> tuple[list, list]:
    """The content ranker (no LLM): ranks and rankings."""
    from re2llm_tui.evaluation.metrics import rank_of
    from re2llm_tui.utilization.session_encoder import content_rankings

    content = content_rankings(sessions, db=db)
    return [rank_of(r, s.target_index) for r, s in zip(content, sessions)], content


def _store_rows(db, result: EvalResult, client, sessions, actions, choices, rankings, source,
                seed: int, rank_by: str = "reply", failed: str | None = None,
                samples: int = 1) -> None:
    """Each row as a run (``kind='evaluate'``) with one item per session; ``failed``: every
    LLM call failed, the LLM rows end ``failed`` with this line.  With ``samples`` > 1 an
    item's ``target_rank`` is sample 0's and ``samples`` holds every sample's rank."""
    from re2llm_tui.prompts import prompt_version
    from re2llm_tui.store import runs
    from re2llm_tui.utilization.rewards import reward_context

    context = reward_context(client, rank_by, samples)
    hint_ids = result.hint_ids
    for name in result.ranks:
        acts = choices.get(name)
        fixed = int(acts[0]) if name in (NO_HINT, BEST) else None
        params = {**result.selection, "policy": name, "kb_version": result.kb_version,
                  "seed": seed,
                  "train_run": result.train_run_id, "context": context,
                  "n_sessions": result.n, "rank_by": rank_by,
                  **({"samples": samples} if samples > 1 and name != CONTENT else {}),
                  **({} if name == CONTENT else getattr(client, "decoding_record", dict)())}
        rid = runs.create_run(
            db, name=f"evaluate {result.dataset}/{result.split}: {name}", kind="evaluate",
            dataset=result.dataset, split=result.split,
            model=None if name == CONTENT else client.model,
            prompt_version=None if name == CONTENT else prompt_version(
                actions[fixed][1] if fixed is not None else "hint"),
            hint_id=hint_ids[fixed] if fixed is not None else None,
            hint_text=(actions[fixed][1] or None) if fixed is not None else None,
            params=params)
        result.run_ids[name] = rid
        n_failed = 0
        with runs.ending(db, rid):
            for i, s in enumerate(sessions):
                outcome = result.ranks[name][i]
                cols = {"ranking": rankings[name][i], "target_rank": outcome}
                if isinstance(outcome, list):
                    cols["target_rank"] = outcome[0] if outcome else None
                    cols["samples"] = [{"target_rank": r} for r in outcome]
                if acts is not None:
                    ok = bool(np.isfinite(source.ndcg[i, int(acts[i])]))
                    cols["error"] = None if ok else "LLM call failed"
                    n_failed += not ok
                runs.add_run_item(db, rid, s.id, **cols)
            llm_failed = failed is not None and acts is not None
            runs.finish_run(db, rid, result.rows[name], n_failed=n_failed,
                            status="failed" if llm_failed else "done",
                            error=failed if llm_failed else None)


# --------------------------------------------------------------------------- as a job

@dataclass
class EvalSpec:
    """An evaluation to run in a spawned process (:func:`run_job`); picklable."""

    dataset: str
    split: str = "test"
    model: str | None = None
    db_path: str | None = None
    data_dir: str | None = None
    limit: int | None = None
    oracle: bool = True
    seed: int = 0
    n_boot: int = 1000
    workers: int = 1
    train_run: int | None = None
    llm_options: dict = field(default_factory=dict)
    rank_by: str = "reply"
    sample: int | None = None
    permutations: int = 0
    samples: int = 1


def run_job(spec: EvalSpec, emit, control) -> dict:
    """The evaluation's body in its job process: progress as ``table`` events, the result
    (rows, paired differences, notes) as the job's result."""
    from re2llm_tui.llm.client import LLMClient
    from re2llm_tui.store.workspace import open_workspace

    client = LLMClient(spec.db_path, model=spec.model, **spec.llm_options)
    db = open_workspace(spec.db_path)
    try:
        client.check()
        out = evaluate(db, Dataset.resolve(spec.dataset, spec.data_dir), split=spec.split,
                       client=client, limit=spec.limit, oracle=spec.oracle,
                       seed=spec.seed, n_boot=spec.n_boot, workers=spec.workers,
                       train_run=spec.train_run, rank_by=spec.rank_by, sample=spec.sample,
                       permutations=spec.permutations, samples=spec.samples,
                       progress=lambda p: emit("table", p.as_dict()))
    finally:
        client.close()
        db.conn.close()
    return {"status": "done", "rows": out.rows, "paired": out.paired, "notes": out.notes,
            "n": out.n, "model": out.model, "llm_calls": out.llm_calls,
            "cache_hits": out.cache_hits, "failed": out.failed, "cost": out.cost,
            "run_ids": out.run_ids}
