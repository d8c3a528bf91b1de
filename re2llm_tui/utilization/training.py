"""Training the hint-retrieval agent: sessions + KB actions + states + rewards -> PPO.

:func:`train` runs in the calling process; :func:`start_training_process` runs it in a
spawned process and returns a :class:`TrainingHandle` (the TUI uses exactly this)::

    handle = start_training_process(dataset="games", model=None, db_path="kb.sqlite",
                                    steps=500_000, seed=1, prefill=False, resume=True)
    handle.poll()    # -> list of scalar dicts {"step", "name", "value"} since the last poll
    handle.pause(); handle.resume(); handle.stop()
    handle.join()    # -> TrainSummary as a dict (or None if the process failed: see .error)
    handle.state     # starting | running | paused | stopping | done | stopped | failed
    handle.error     # the one-line error of a failed run, else None

A run is recorded in the workspace (``train_runs``; its scalars in ``train_scalars``) and
checkpointed under ``<workspace>.checkpoints/`` (``kb.sqlite`` -> ``kb.checkpoints/``) every
``checkpoint_every`` steps and whenever it stops.  With ``resume`` (the default), the latest
unfinished run of the same dataset, model, seed and sessions continues from its checkpoint
-- the same curve as if it had never stopped; a run trained on another KB version is
refused (:class:`~re2llm_tui.utilization.agent.KBVersionMismatch`).  A budget stop
(``--max-cost``/``--max-calls``) saves a checkpoint and leaves the run ``stopped``:
rerunning the command resumes it, paying only for outcomes not yet in the reward table.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from re2llm_tui.errors import UserError
from re2llm_tui.store.train_runs import (
    find_resumable,
    latest_run,
    resumable_run,
    run_scalars,
)


@dataclass
class TrainSpec:
    """Everything a training run needs (picklable: it crosses into the spawned process)."""

    dataset: str
    model: str | None = None
    steps: int = 500_000
    seed: int = 1
    prefill: bool = True
    """phase 1 computes the reward table up front, a session at a time (False: outcomes are
    computed when PPO first visits them)"""
    workers: int = 1
    """processes computing the reward table (each with its own local model instance)"""
    db_path: str | None = None
    data_dir: str | None = None
    max_cost: float | None = None
    max_calls: int | None = None
    api_bases: tuple[str, ...] = ()
    concurrency: int | None = None
    limit: int | None = None
    """train on the first N training sessions only (quick runs)"""

    resume: bool = True
    log_every: int = 1024
    checkpoint_every: int = 16384
    ppo: dict = field(default_factory=dict)
    """PPOConfig overrides (e.g. {"clip_coef": 0.1}); unknown keys are ignored"""
    rank_by: str = "reply"
    """how the target's rank is counted in the reward (llm.parsing.target_rank)"""
    samples: int = 1
    """--samples N: each reward-table outcome is the mean NDCG@10 of N samples (a model
    whose replies are sampled); recorded in the run's config when N > 1"""


@dataclass
class TrainSummary:
    run_id: int
    status: str                  # done | stopped
    reason: str
    step: int
    total_steps: int
    resumed: bool
    kb_version: str
    hint_ids: list[int]
    n_sessions: int
    checkpoint: str
    scalars: dict
    llm_calls: int
    cache_hits: int
    failed: int
    cost: float
    table_known: int
    table_size: int
    greedy_hist: list[int]
    #: session id -> the hint id the agent picks there (argmax): "the sessions it routes to
    #: a hint" (kb/evidence.py)
    greedy_choices: dict = field(default_factory=dict)
    best_hint: dict | None = None      # best single action on train (complete table only)
    random_reward: float | None = None  # expected reward of a uniform random policy
    seconds: float = 0.0
    llm_calls_total: int = 0            # over every invocation of this run (resumes included)

    def as_dict(self) -> dict:
        return asdict(self)


EventCallback = Callable[[str, Any], None]


def checkpoint_dir(db_path) -> Path:
    """The folder next to the workspace that holds its agents' checkpoints."""
    from re2llm_tui.store.workspace import workspace_path

    path = workspace_path(db_path).resolve()
    return path.with_name(path.stem + ".checkpoints")


# --------------------------------------------------------------------------- records
# the stored runs live in re2llm_tui.store.train_runs; their readers stay importable here
__all__ = ["TrainSpec", "TrainSummary", "train", "start_training_process", "TrainingHandle",
           "checkpoint_dir", "find_resumable", "latest_run", "resumable_run", "run_scalars"]


# --------------------------------------------------------------------------- train

@dataclass
class _Setup:
    """What a run needs, resolved once: sessions, actions, states, rewards, config."""

    dataset: str
    sessions: list
    kb_version: str
    actions: list
    states: Any
    source: Any
    cfg: Any

    @property
    def hint_ids(self) -> list[int]:
        return [h for h, _ in self.actions]


def _validate(spec: TrainSpec) -> None:
    if not isinstance(spec.steps, int) or spec.steps < 1:
        raise UserError(f"--steps must be a positive integer (got {spec.steps!r})")
    if spec.limit is not None and spec.limit < 1:
        raise UserError(f"--limit must be >= 1 (got {spec.limit})")
    if spec.workers < 1:
        raise UserError(f"--local-workers must be >= 1 (got {spec.workers})")
    from re2llm_tui.llm.decoding import check_samples

    check_samples(spec.samples)


@dataclass
class TrainPlan:
    """What training asks the LLM for: the training sessions, the KB's actions and the
    reward table over them (whose missing outcomes are the calls)."""

    sessions: list
    kb_version: str
    actions: list[tuple[int, str]]
    source: object              # LLMRewards


def plan_training(db, client, ds, *, limit: int | None = None, rank_by: str = "reply",
                  samples: int = 1) -> TrainPlan:
    """Training's set-up, one plan for :func:`train` and its cost estimate
    (:func:`re2llm_tui.costs.dry_run.train`): the first ``limit`` training sessions (all
    when None), the accepted hints as actions and their reward table."""
    from re2llm_tui.kb import KnowledgeBase
    from re2llm_tui.utilization.rewards import LLMRewards

    sessions = ds.first("train", limit) if limit else ds.sessions("train")
    kb_version, actions = KnowledgeBase(db, ds).actions()
    return TrainPlan(sessions, kb_version, actions,
                     LLMRewards(client, sessions, actions, dataset=ds.name, db=db,
                                rank_by=rank_by, samples=samples))


def _set_up(spec: TrainSpec, db, client) -> _Setup:
    from re2llm_tui.data.dataset import Dataset
    from re2llm_tui.utilization.agent import PPOConfig
    from re2llm_tui.utilization.session_encoder import encode_sessions

    ds = Dataset.resolve(spec.dataset, spec.data_dir)     # the job's edge: resolved once
    cfg = PPOConfig.from_dict({**spec.ppo, "total_steps": spec.steps, "seed": spec.seed,
                               "log_every": spec.log_every}).validate()
    plan = plan_training(db, client, ds, limit=spec.limit, rank_by=spec.rank_by,
                         samples=spec.samples)
    return _Setup(ds.name, plan.sessions, plan.kb_version, plan.actions,
                  encode_sessions(plan.sessions, db=db), plan.source, cfg)


def _open_run(spec: TrainSpec, db, model: str, su: _Setup):
    """Resume the latest unfinished run of these settings, or record a new one with a
    checkpoint from the start (a run killed in phase 1 is resumable too).

    Returns ``(run_id, trainer, checkpoint path, the resumed run's record or None)``."""
    from re2llm_tui.store import train_runs
    from re2llm_tui.utilization.agent import KBVersionMismatch, PPOTrainer

    resumable = train_runs.find_resumable(db, su.dataset, model, spec.seed,
                                          len(su.sessions), spec.rank_by,
                                          spec.samples) \
        if spec.resume else None
    if resumable is not None:
        try:
            trainer = PPOTrainer.load(resumable["checkpoint"], su.states, su.source,
                                      kb_version=su.kb_version, hint_ids=su.hint_ids,
                                      config=su.cfg)
        except KBVersionMismatch as exc:
            raise KBVersionMismatch(f"cannot resume training run {resumable['id']}: {exc} "
                                    "(start a new run with --fresh)") from None
        train_runs.take_over(db, resumable["id"], su.cfg.total_steps, trainer.step)
        return resumable["id"], trainer, Path(resumable["checkpoint"]), resumable
    run_id = train_runs.create(db, dataset=su.dataset, model=model, kb_version=su.kb_version,
                               hint_ids=su.hint_ids, seed=spec.seed,
                               total_steps=su.cfg.total_steps,
                               config={**asdict(su.cfg), "rank_by": spec.rank_by,
                                       **({"samples": spec.samples}
                                          if spec.samples > 1 else {})},
                               n_sessions=len(su.sessions))
    ckpt = checkpoint_dir(spec.db_path) / f"train-{run_id:04d}.pt"
    trainer = PPOTrainer(su.states, su.source, su.cfg, kb_version=su.kb_version,
                         hint_ids=su.hint_ids)
    trainer.save(ckpt)
    train_runs.set_checkpoint(db, run_id, ckpt)
    return run_id, trainer, ckpt, None


def _run_phases(spec: TrainSpec, db, run_id: int, trainer, ckpt, su: _Setup, emit,
                control) -> tuple[str, str]:
    """Phase 1, the reward table; phase 2, PPO on it.  Returns ``(status, reason)``.

    Raises :class:`~re2llm_tui.llm.outcomes.NothingWorked` when every reward call failed
    (after the table's fill, or at a PPO report without a prefill): the run then fails."""
    import numpy as np

    from re2llm_tui.control import RunStop
    from re2llm_tui.store.calls import last_call_id
    from re2llm_tui.store import train_runs

    since = last_call_id(db)

    def on_scalars(step, sc):
        emit("scalars", train_runs.store_scalars(db, run_id, step, sc))
        _check_rewards(db, su.source, run_id, since)

    try:
        if spec.prefill:
            emit("phase", {"phase": "table"})
            su.source.prefill(progress=lambda p: emit("table", p), workers=spec.workers)
            _check_rewards(db, su.source, run_id, since)
            if np.isfinite(su.source.table()).all():
                trainer.source = su.source.as_table()
        emit("phase", {"phase": "ppo"})
        control.check()
        outcome = trainer.train(
            on_scalars=on_scalars,
            control=control, checkpoint_path=ckpt, checkpoint_every=spec.checkpoint_every)
        if outcome.status == "done":
            _check_rewards(db, su.source, run_id, since)
        return outcome.status, ("finished" if outcome.status == "done" else control.reason)
    except RunStop as exc:
        return "stopped", str(exc)
    except KeyboardInterrupt:
        return "stopped", "interrupted"


def _check_rewards(db, source, run_id: int, since_id: int) -> None:
    """:class:`~re2llm_tui.llm.outcomes.NothingWorked` when no reward outcome is known and
    reward calls failed: every call of the run failed (a misconfigured model, a broken
    server), so PPO would learn from a table of zeros."""
    from re2llm_tui.llm.outcomes import CallOutcomes, check_outcomes, failed_call_errors

    failed = int(source.stats()["failed"])
    if not failed or source.known():
        return
    check_outcomes(CallOutcomes.of(ok=source.known(), errors=failed_call_errors(
        db, since_id=since_id, model=source.model), failed=failed),
        marked=f"training run t{run_id}")


def train(spec: TrainSpec, *, on_event: EventCallback | None = None, control=None,
          client=None) -> TrainSummary:
    """Train (or resume) an agent; see the module docstring.

    Phase 1 (``spec.prefill``) fills the reward table a session at a time, in
    ``spec.workers`` processes; phase 2 runs PPO on it.  ``on_event(kind, payload)``:
    ``("run", {...})`` once, ``("phase", {"phase": "table"|"ppo"})``, ``("table",
    PrefillProgress)`` as outcomes arrive, ``("scalars", [records])`` at every PPO report.
    ``control`` (default: this process's) answers pause and stop; ``client`` overrides the
    LLM client built from ``spec`` (tests).
    """
    from re2llm_tui.control import current as current_control
    from re2llm_tui.llm.client import LLMClient
    from re2llm_tui.store import train_runs
    from re2llm_tui.store.workspace import open_workspace

    t0 = time.perf_counter()
    emit = on_event or (lambda kind, payload: None)
    _validate(spec)
    own_client = client is None
    if client is None:
        client = LLMClient(spec.db_path, model=spec.model, api_bases=spec.api_bases,
                           concurrency=spec.concurrency, max_cost=spec.max_cost,
                           max_calls=spec.max_calls)
    db = open_workspace(spec.db_path)
    control = control or current_control()
    run_id = su = None
    try:
        su = _set_up(spec, db, client)
        run_id, trainer, ckpt, resumed = _open_run(spec, db, client.model, su)
        before = json.loads(resumed["summary"]) if resumed and resumed["summary"] else {}
        calls_before = int(before.get("llm_calls_total", before.get("llm_calls", 0)) or 0)
        emit("run", {"run_id": run_id, "resumed": resumed is not None, "model": client.model,
                     "calls_before": calls_before, "kb_version": su.kb_version,
                     "n_actions": len(su.actions), "hint_ids": su.hint_ids,
                     "n_sessions": len(su.sessions), "table_known": su.source.known(),
                     "table_size": len(su.sessions) * len(su.actions), "step": trainer.step,
                     "total_steps": su.cfg.total_steps, "prefill": bool(spec.prefill),
                     "workers": spec.workers,
                     "demo_model": bool(getattr(client, "is_demo_model", False))})
        status, reason = _run_phases(spec, db, run_id, trainer, ckpt, su, emit, control)
        if status == "stopped":
            trainer.save(ckpt)
        summary = _summary(run_id, status, reason, trainer, su.source, resumed is not None,
                           su.kb_version, su.hint_ids, len(su.sessions), ckpt, t0,
                           session_ids=[s.id for s in su.sessions])
        summary.llm_calls_total = calls_before + summary.llm_calls
        train_runs.finish(db, run_id, status, summary.step, summary.as_dict())
        return summary
    except BaseException as exc:
        if run_id is not None:
            train_runs.fail(db, run_id, " ".join(str(exc).split()) or type(exc).__name__)
        raise
    finally:
        if su is not None:
            su.source.close()
        if own_client:
            client.close()
        db.conn.close()


def _summary(run_id, status, reason, trainer, source, resumed, kb_version, hint_ids,
             n_sessions, ckpt, t0, session_ids=None) -> TrainSummary:
    import numpy as np

    table = source.table()
    complete = bool(np.isfinite(table).all())
    best = rand = None
    if complete:
        means = table.mean(axis=0)
        a = int(np.argmax(means))
        best = {"action": a, "hint_id": hint_ids[a], "mean_reward": float(means[a])}
        rand = float(table.mean())
    hist = [0] * len(hint_ids)
    choices: dict = {}
    step = 0
    scalars: dict = {}
    if trainer is not None:
        greedy = [int(a) for a in trainer.greedy_actions()]
        for a in greedy:
            hist[a] += 1
        if session_ids is not None and len(session_ids) == len(greedy):
            choices = {sid: int(hint_ids[a]) for sid, a in zip(session_ids, greedy)}
        step = trainer.step
        scalars = dict(trainer.last_scalars)
    st = source.stats()
    return TrainSummary(
        run_id=run_id, status=status, reason=reason, step=step,
        total_steps=trainer.cfg.total_steps if trainer else 0, resumed=resumed,
        kb_version=kb_version, hint_ids=list(hint_ids), n_sessions=n_sessions,
        checkpoint=str(ckpt), scalars=scalars, llm_calls=int(st["llm_calls"]),
        cache_hits=int(st["cache_hits"]), failed=int(st["failed"]), cost=float(st["cost"]),
        table_known=source.known(), table_size=table.size, greedy_hist=hist,
        greedy_choices=choices,
        best_hint=best, random_reward=rand, seconds=time.perf_counter() - t0)


# --------------------------------------------------------------------------- process

def run_job(spec: TrainSpec, emit, control) -> dict:
    """The training job's body in its spawned process (:mod:`re2llm_tui.runtime.jobs`)."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:      # reported by train() itself
        pass

    def on_event(kind: str, payload) -> None:
        if kind == "scalars":
            emit("scalars", {"records": payload})
        elif kind == "table":
            emit("table", payload.as_dict())
        else:
            emit(kind, dict(payload))

    return train(spec, on_event=on_event, control=control).as_dict()


class TrainingHandle:
    """A training run in a spawned process (see the module docstring).

    :meth:`poll` returns scalar records ``{"step", "name", "value"}``; the reward table's
    progress arrives as ``table/*`` records (``table/done``, ``table/total``,
    ``table/per_min``, ``table/eta_s``, ``table/hint_means``, ...) and the phase as
    :attr:`phase`.  :attr:`step`, :attr:`llm_calls` and :attr:`state` always hold the
    latest truth the process reported.
    """

    def __init__(self, job) -> None:
        self.job = job
        self.run: dict | None = None
        self.table: dict | None = None
        self.phase = "starting"
        self.step = 0
        self.llm_calls = 0
        self.calls_before = 0     # calls paid by earlier invocations of a resumed run

    # the job's state, error and result
    @property
    def state(self) -> str:
        return self.job.state

    @property
    def error(self) -> str | None:
        return self.job.error

    @property
    def summary(self) -> dict | None:
        return self.job.result if self.job.result and "run_id" in self.job.result else None

    @property
    def process(self):
        return self.job.process

    def poll(self) -> list[dict]:
        out: list[dict] = []
        for msg in self.job.poll():
            kind = msg.get("event")
            if kind == "scalars":
                records = msg["records"]
                for r in records:
                    self.step = max(self.step, int(r["step"]))
                    if r["name"] == "charts/llm_calls":      # over the run, resumes included
                        r["value"] = self.calls_before + int(r["value"])
                        self.llm_calls = int(r["value"])
                out.extend(records)
            elif kind == "run":
                self.run = msg
                self.step = int(msg.get("step") or 0)
                self.calls_before = int(msg.get("calls_before") or 0)
                self.llm_calls = self.calls_before
            elif kind == "phase":
                self.phase = msg["phase"]
            elif kind == "table":
                msg["calls"] = self.calls_before + int(msg.get("calls") or 0)
                self.table = msg
                self.llm_calls = msg["calls"]
                minutes = round(float(msg.get("elapsed_s") or 0.0) / 60.0, 3)
                out.extend({"step": minutes, "name": f"table/{k}", "value": msg[k]}
                           for k in ("done", "total", "calls", "cache_hits", "failed", "cost",
                                     "per_min", "eta_s", "rows_done", "rows_total",
                                     "hint_means", "hint_counts", "elapsed_s"))
            elif kind == "finished" and self.summary:
                self.phase = "finished"
                self.step = int(self.summary.get("step") or self.step)
        return out

    def is_alive(self) -> bool:
        return self.job.is_alive()

    def pause(self) -> None:
        self.job.pause()

    def resume(self) -> None:
        self.job.resume()

    def stop(self) -> None:
        self.job.stop()

    def join(self, timeout: float | None = None) -> dict | None:
        self.job.join(timeout)
        return self.summary

    def shutdown(self, timeout: float = 2.0) -> bool:
        return self.job.shutdown(timeout)

    def terminate(self) -> None:
        self.job.terminate()


def start_training_process(dataset: str | None = None, *, spec: TrainSpec | None = None,
                           **kwargs) -> TrainingHandle:
    """Start :func:`train` in a spawned process; returns its :class:`TrainingHandle`.

    Give a :class:`TrainSpec`, or its fields as keyword arguments (``dataset``, ``model``,
    ``db_path``, ``steps``, ``seed``, ``prefill``, ``workers``, ``resume``, ...).  A Textual
    app must call ``multiprocessing.resource_tracker.ensure_running()`` before ``App.run()``.
    """
    from re2llm_tui.runtime.jobs import start_job

    if spec is None:
        if dataset is None:
            raise UserError("start_training_process needs a dataset")
        known = set(TrainSpec.__dataclass_fields__)
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise UserError(f"unknown training option(s): {', '.join(unknown)}")
        if "db_path" in kwargs and kwargs["db_path"] is not None:
            kwargs["db_path"] = str(kwargs["db_path"])
        if "data_dir" in kwargs and kwargs["data_dir"] is not None:
            kwargs["data_dir"] = str(kwargs["data_dir"])
        spec = TrainSpec(dataset=dataset, **kwargs)
    return TrainingHandle(start_job(run_job, spec, name="train"))
