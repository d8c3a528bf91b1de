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
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from re2llm_tui.control import pid_alive
from re2llm_tui.errors import UserError

_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"


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

def find_resumable(db, dataset: str, model: str, seed: int, n_sessions: int) -> dict | None:
    """The latest unfinished run of these settings that has a checkpoint."""
    rows = list(db.query(
        "SELECT * FROM train_runs WHERE dataset=? AND model=? AND seed=? AND n_sessions=? "
        "AND status != 'done' AND checkpoint IS NOT NULL ORDER BY id DESC LIMIT 1",
        [dataset, model, seed, n_sessions]))
    if not rows:
        return None
    run = rows[0]
    if run["status"] == "running" and pid_alive(run["pid"]):
        raise UserError(f"training run {run['id']} is still running (process {run['pid']}); "
                        "stop it first")
    if not Path(run["checkpoint"]).is_file():
        return None
    return run


def resumable_run(db, dataset: str, model: str) -> dict | None:
    """The newest run of ``dataset``/``model`` that can be resumed: stopped, failed after its
    first checkpoint, or still marked ``running`` although its process is gone (a killed
    app).  None when the newest run finished, or is running in a live process."""
    rows = list(db.query("SELECT * FROM train_runs WHERE dataset=? AND model=? "
                         "ORDER BY id DESC LIMIT 1", [dataset, model]))
    if not rows:
        return None
    run = rows[0]
    if run["status"] == "done":
        return None
    if run["status"] == "running" and pid_alive(run["pid"]):
        return None
    if not run["checkpoint"] or not Path(run["checkpoint"]).is_file():
        return None
    summary = json.loads(run["summary"]) if run["summary"] else {}
    run["table_known"] = summary.get("table_known")
    run["table_size"] = summary.get("table_size")
    run["dead"] = run["status"] == "running"
    return run


def latest_run(db, dataset: str, model: str | None = None, *, run_id: int | None = None,
               finished_only: bool = False) -> dict | None:
    """A training run by id, or the latest of a dataset (and model) whose checkpoint exists
    (finished runs first)."""
    if run_id is not None:
        rows = list(db.query("SELECT * FROM train_runs WHERE id=?", [run_id]))
        if not rows:
            raise UserError(f"no training run {run_id}")
        if not rows[0]["checkpoint"] or not Path(rows[0]["checkpoint"]).is_file():
            raise UserError(f"training run {run_id} has no checkpoint yet")
        return rows[0]
    where = "dataset=? AND checkpoint IS NOT NULL"
    args: list = [dataset]
    if model is not None:
        where += " AND model=?"
        args.append(model)
    if finished_only:
        where += " AND status='done'"
    for row in db.query(f"SELECT * FROM train_runs WHERE {where} ORDER BY "
                        "(status='done') DESC, id DESC", args):
        if Path(row["checkpoint"]).is_file():
            return row
    return None


def run_scalars(db, run_id: int, name: str | None = None) -> list[dict]:
    """Stored scalars of a run, in step order (histograms decoded)."""
    sql = "SELECT step, name, value, value_json FROM train_scalars WHERE run_id=?"
    args: list = [run_id]
    if name is not None:
        sql += " AND name=?"
        args.append(name)
    out = []
    for step, nm, value, vjson in db.execute(sql + " ORDER BY step, name", args):
        out.append({"step": step, "name": nm, "value": json.loads(vjson) if vjson else value})
    return out


def _store_scalars(db, run_id: int, step: int, scalars: dict) -> list[dict]:
    from re2llm_tui.store.workspace import transaction

    records, rows = [], []
    for name, value in scalars.items():
        if isinstance(value, (list, tuple)):
            rows.append((run_id, step, name, None, json.dumps(list(value))))
            records.append({"step": step, "name": name, "value": list(value)})
        else:
            rows.append((run_id, step, name, float(value), None))
            records.append({"step": step, "name": name, "value": float(value)})
    with transaction(db):
        db.conn.executemany("INSERT OR REPLACE INTO train_scalars (run_id, step, name, value, "
                            "value_json) VALUES (?,?,?,?,?)", rows)
        db.execute(f"UPDATE train_runs SET step=?, updated_at={_NOW} WHERE id=?", [step, run_id])
    return records


# --------------------------------------------------------------------------- train

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
    import numpy as np

    from re2llm_tui.control import RunStop
    from re2llm_tui.control import current as current_control
    from re2llm_tui.data.release import Dataset
    from re2llm_tui.kb import KnowledgeBase
    from re2llm_tui.llm.client import LLMClient
    from re2llm_tui.store.workspace import open_workspace
    from re2llm_tui.utilization.agent import KBVersionMismatch, PPOConfig, PPOTrainer
    from re2llm_tui.utilization.rewards import LLMRewards
    from re2llm_tui.utilization.session_encoder import encode_sessions

    t0 = time.perf_counter()
    emit = on_event or (lambda kind, payload: None)
    ds = Dataset.resolve(spec.dataset, spec.data_dir)     # the job's edge: resolved once
    dataset = ds.name
    if not isinstance(spec.steps, int) or spec.steps < 1:
        raise UserError(f"--steps must be a positive integer (got {spec.steps!r})")
    if spec.limit is not None and spec.limit < 1:
        raise UserError(f"--limit must be >= 1 (got {spec.limit})")
    if spec.workers < 1:
        raise UserError(f"--local-workers must be >= 1 (got {spec.workers})")
    sessions = ds.sessions("train")
    if spec.limit:
        sessions = sessions[:spec.limit]
    own_client = client is None
    if client is None:
        client = LLMClient(spec.db_path, model=spec.model, api_bases=spec.api_bases,
                           concurrency=spec.concurrency, max_cost=spec.max_cost,
                           max_calls=spec.max_calls)
    db = open_workspace(spec.db_path)
    control = control or current_control()
    run_id = None
    source = None
    trainer = None
    resumable = None
    ckpt = None
    try:
        kb_version, actions = KnowledgeBase(db, ds).actions()
        hint_ids = [h for h, _ in actions]
        states = encode_sessions(sessions, db=db)
        source = LLMRewards(client, sessions, actions, dataset=dataset, db=db)
        cfg = PPOConfig.from_dict({**spec.ppo, "total_steps": spec.steps, "seed": spec.seed,
                                   "log_every": spec.log_every}).validate()

        resumable = find_resumable(db, dataset, client.model, spec.seed, len(sessions)) \
            if spec.resume else None
        if resumable is not None:
            try:
                trainer = PPOTrainer.load(resumable["checkpoint"], states, source,
                                          kb_version=kb_version, hint_ids=hint_ids, config=cfg)
            except KBVersionMismatch as exc:
                raise KBVersionMismatch(
                    f"cannot resume training run {resumable['id']}: {exc} "
                    "(start a new run with --fresh)") from None
            run_id = resumable["id"]
            db.execute(f"UPDATE train_runs SET status='running', pid=?, total_steps=?, error=NULL, "
                       f"finished_at=NULL, updated_at={_NOW} WHERE id=?",
                       [os.getpid(), cfg.total_steps, run_id])
            # scalars reported after the checkpoint will be reported again
            db.execute("DELETE FROM train_scalars WHERE run_id=? AND step > ?",
                       [run_id, trainer.step])
            ckpt = Path(resumable["checkpoint"])
        else:
            cur = db.execute(
                "INSERT INTO train_runs (dataset, model, kb_version, hint_ids, seed, total_steps, "
                "config, n_sessions, pid) VALUES (?,?,?,?,?,?,?,?,?)",
                [dataset, client.model, kb_version, json.dumps(hint_ids), spec.seed,
                 cfg.total_steps, json.dumps(asdict(cfg)), len(sessions), os.getpid()])
            run_id = cur.lastrowid
            ckpt = checkpoint_dir(spec.db_path) / f"train-{run_id:04d}.pt"
            trainer = PPOTrainer(states, source, cfg, kb_version=kb_version, hint_ids=hint_ids)
            # a checkpoint from the start: a run killed in phase 1 is resumable too
            trainer.save(ckpt)
            db.execute("UPDATE train_runs SET checkpoint=? WHERE id=?", [str(ckpt), run_id])
        before = json.loads(resumable["summary"]) if resumable and resumable["summary"] else {}
        calls_before = int(before.get("llm_calls_total", before.get("llm_calls", 0)) or 0)
        emit("run", {"run_id": run_id, "resumed": resumable is not None, "model": client.model,
                     "calls_before": calls_before,
                     "kb_version": kb_version, "n_actions": len(actions),
                     "hint_ids": hint_ids, "n_sessions": len(sessions),
                     "table_known": source.known(), "table_size": len(sessions) * len(actions),
                     "step": trainer.step if trainer else 0, "total_steps": cfg.total_steps,
                     "prefill": bool(spec.prefill), "workers": spec.workers,
                     "demo_model": bool(getattr(client, "is_demo_model", False))})

        reward_source = source
        status, reason = "done", "finished"
        try:
            if spec.prefill:
                emit("phase", {"phase": "table"})
                source.prefill(progress=lambda p: emit("table", p), workers=spec.workers)
                table = source.table()
                if np.isfinite(table).all():
                    reward_source = source.as_table()
            emit("phase", {"phase": "ppo"})
            trainer.source = reward_source

            def on_scalars(step: int, scalars: dict) -> None:
                emit("scalars", _store_scalars(db, run_id, step, scalars))

            control.check()
            outcome = trainer.train(on_scalars=on_scalars, control=control,
                                    checkpoint_path=ckpt,
                                    checkpoint_every=spec.checkpoint_every)
            status = outcome.status
            reason = "finished" if status == "done" else control.reason
        except RunStop as exc:
            status, reason = "stopped", str(exc)
        except KeyboardInterrupt:
            status, reason = "stopped", "interrupted"
        if status == "stopped":
            trainer.save(ckpt)
        summary = _summary(run_id, status, reason, trainer, source, resumable is not None,
                           kb_version, hint_ids, len(sessions), ckpt, t0)
        summary.llm_calls_total = calls_before + summary.llm_calls
        db.execute(f"UPDATE train_runs SET status=?, step=?, summary=?, pid=NULL, "
                   f"updated_at={_NOW}, finished_at={_NOW} WHERE id=?",
                   [status, summary.step, json.dumps(summary.as_dict()), run_id])
        return summary
    except BaseException as exc:
        if run_id is not None:
            msg = " ".join(str(exc).split()) or type(exc).__name__
            db.execute(f"UPDATE train_runs SET status='failed', error=?, pid=NULL, "
                       f"updated_at={_NOW} WHERE id=? AND status='running'", [msg, run_id])
        raise
    finally:
        if source is not None:
            source.close()
        if own_client:
            client.close()
        db.conn.close()


def _summary(run_id, status, reason, trainer, source, resumed, kb_version, hint_ids,
             n_sessions, ckpt, t0) -> TrainSummary:
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
    step = 0
    scalars: dict = {}
    if trainer is not None:
        for a in trainer.greedy_actions():
            hist[int(a)] += 1
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
        best_hint=best, random_reward=rand, seconds=time.perf_counter() - t0)


# --------------------------------------------------------------------------- process

def run_job(spec: TrainSpec, emit, control) -> dict:
    """The training job's body in its spawned process (:mod:`re2llm_tui.jobs`)."""
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
    from re2llm_tui.jobs import start_job

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
    return TrainingHandle(start_job("re2llm_tui.utilization.training:run_job", spec, name="train"))
