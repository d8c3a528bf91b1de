"""Training runs and their scalars in the workspace (``train_runs``, ``train_scalars``).

One function per question or change the trainer, the evaluation and the app ask of the
stored runs; nothing else writes these tables.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from re2llm_tui.control import pid_alive
from re2llm_tui.errors import UserError
from re2llm_tui.store.workspace import transaction
from re2llm_tui.store.runs import next_id_sql

_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"


# --------------------------------------------------------------------------- reading

def get(db, run_id: int) -> dict | None:
    rows = list(db.query("SELECT * FROM train_runs WHERE id=?", [run_id]))
    return rows[0] if rows else None


def find_resumable(db, dataset: str, model: str, seed: int, n_sessions: int,
                   rank_by: str = "reply", samples: int = 1) -> dict | None:
    """The latest unfinished run of these settings that has a checkpoint (its rewards
    counted with the same rank accounting: runs from before it was recorded count as
    ``reply``; and averaged over as many samples: 1 when the config does not say)."""
    rows = [r for r in db.query(
        "SELECT * FROM train_runs WHERE dataset=? AND model=? AND seed=? AND n_sessions=? "
        "AND status != 'done' AND checkpoint IS NOT NULL ORDER BY id DESC",
        [dataset, model, seed, n_sessions])
        if (json.loads(r["config"] or "{}").get("rank_by") or "reply") == rank_by
        and int(json.loads(r["config"] or "{}").get("samples") or 1) == samples]
    if not rows:
        return None
    run = rows[0]
    if run["status"] == "running" and pid_alive(run["pid"]):
        raise UserError(f"training run {run['id']} is still running (process {run['pid']}); "
                        "stop it first")
    if not Path(run["checkpoint"]).is_file():
        return None
    return run


def running_twin(db, *, dataset: str, model: str, kb_version: str, seed: int,
                 n_sessions: int, rank_by: str = "reply",
                 exclude: int | None = None) -> dict | None:
    """A run of the same configuration -- dataset, model, KB version, seed, sessions and rank
    accounting, as :func:`find_resumable` tells runs apart -- that is ``running`` in another
    live process (two workbenches on one workspace would pay for every outcome twice)."""
    for run in db.query(
            "SELECT * FROM train_runs WHERE dataset=? AND model=? AND kb_version=? AND seed=? "
            "AND n_sessions=? AND status='running' AND pid IS NOT NULL AND id IS NOT ? "
            "ORDER BY id DESC", [dataset, model, kb_version, seed, n_sessions, exclude]):
        if (json.loads(run["config"] or "{}").get("rank_by") or "reply") != rank_by:
            continue
        if pid_alive(run["pid"]):
            return run
    return None


def refuse_twin(db, **config) -> None:
    """One-line :class:`UserError` naming the run of the same configuration that another
    live process is training (:func:`running_twin`), if any."""
    run = running_twin(db, **config)
    if run is not None:
        raise UserError(
            f"training run {run['id']} of the same configuration ({run['dataset']}, "
            f"{run['model']}, seed {run['seed']}, {run['n_sessions']} sessions) is running in "
            f"process {run['pid']}; stop it there (or wait for it) instead of paying for "
            "every outcome twice")


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
        run = get(db, run_id)
        if run is None:
            raise UserError(f"no training run {run_id}")
        if not run["checkpoint"] or not Path(run["checkpoint"]).is_file():
            raise UserError(f"training run {run_id} has no checkpoint yet")
        return run
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


# --------------------------------------------------------------------------- changing

def create(db, *, dataset: str, model: str, kb_version: str, hint_ids: list[int], seed: int,
           total_steps: int, config: dict, n_sessions: int) -> int:
    """A new run, owned by this process; returns its id.  Refused (one line) while another
    live process trains a run of the same configuration: the check and the insert are one
    transaction, so two processes starting at once cannot both pass it."""
    with transaction(db):
        refuse_twin(db, dataset=dataset, model=model, kb_version=kb_version, seed=seed,
                    n_sessions=n_sessions, rank_by=config.get("rank_by") or "reply")
        cur = db.execute(
            "INSERT INTO train_runs (id, dataset, model, kb_version, hint_ids, seed, total_steps, "
            f"config, n_sessions, pid) VALUES ({next_id_sql('train_runs')},?,?,?,?,?,?,?,?,?)",
            [dataset, model, kb_version, json.dumps(hint_ids), seed, total_steps,
             json.dumps(config), n_sessions, os.getpid()])
    return cur.lastrowid


def set_checkpoint(db, run_id: int, path: str | Path) -> None:
    db.execute("UPDATE train_runs SET checkpoint=? WHERE id=?", [str(path), run_id])


def take_over(db, run_id: int, total_steps: int, from_step: int) -> None:
    """This process resumes the run: it is ``running`` again, and scalars reported after the
    checkpoint's step (they will be reported again) are dropped.  Refused (one line) while
    another live process trains this run or one of the same configuration."""
    with transaction(db):
        run = get(db, run_id)
        if run is not None:
            if run["status"] == "running" and pid_alive(run["pid"]):
                raise UserError(f"training run {run_id} is still running (process "
                                f"{run['pid']}); stop it first")
            refuse_twin(db, dataset=run["dataset"], model=run["model"],
                        kb_version=run["kb_version"], seed=run["seed"],
                        n_sessions=run["n_sessions"],
                        rank_by=json.loads(run["config"] or "{}").get("rank_by") or "reply",
                        exclude=run_id)
        db.execute(f"UPDATE train_runs SET status='running', pid=?, total_steps=?, error=NULL, "
                   f"finished_at=NULL, updated_at={_NOW} WHERE id=?",
                   [os.getpid(), total_steps, run_id])
        db.execute("DELETE FROM train_scalars WHERE run_id=? AND step > ?", [run_id, from_step])


def store_scalars(db, run_id: int, step: int, scalars: dict) -> list[dict]:
    """Store one report's scalars (lists as JSON) and the run's step; returns the records
    ``{"step", "name", "value"}`` as the app reads them."""
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


def finish(db, run_id: int, status: str, step: int, summary: dict) -> None:
    """The run ended (``done`` or ``stopped``): no process owns it any more."""
    db.execute(f"UPDATE train_runs SET status=?, step=?, summary=?, pid=NULL, "
               f"updated_at={_NOW}, finished_at={_NOW} WHERE id=?",
               [status, step, json.dumps(summary), run_id])


def fail(db, run_id: int, error: str) -> None:
    """The run failed with ``error`` (only if it is still marked running)."""
    db.execute(f"UPDATE train_runs SET status='failed', error=?, pid=NULL, "
               f"updated_at={_NOW} WHERE id=? AND status='running'", [error, run_id])
