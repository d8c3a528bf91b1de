"""The run catalog: every stored run of the workspace, read (and deleted) as one kind of record.

Two tables hold runs: ``runs`` (kinds ``score`` | ``recommend`` | ``evaluate`` ...: a set of
LLM outputs over a split's sessions, one ``run_items`` row per session) and ``train_runs``
(PPO training of the hint-retrieval agent, its scalars in ``train_scalars``).  Their ids are
separate sequences, so the catalog names a training run ``t<id>`` (``t3``) and an output run
by its plain number (``5``).  All SQL of the experiment tracker is here; the comparisons
are computed by :mod:`re2llm_tui.evaluation.run_compare`, which the CLI (``re2llm-tui
runs``) and the TUI's Runs screen call.

API (``db`` is an open workspace, :func:`re2llm_tui.store.workspace.open_workspace`):

* :func:`list_runs` ``(db, dataset=None, kind=None) -> list[dict]`` -- one :func:`record`
  per run, output runs first (by id), then training runs; ``kind="train"`` for training
  runs only.
* :func:`get_record` ``(db, ref) -> dict`` -- one run by reference (``5``, ``"5"``,
  ``"t3"``); a one-line :class:`UserError` when there is none.
* :func:`run_outcomes` ``(db, run_id) -> {session_id: rank}`` -- the scored sessions of an
  output run (no error, label matched), each with its target's 1-based rank or ``None``.
* :func:`session_counts` ``(db, run_id) -> dict`` -- how many sessions, scored, failed,
  label mismatches, and the target in the top 1 / 10 / not ranked.
* :func:`train_scalars` ``(db, train_id, names=None) -> {name: [(step, value), ...]}``.
* :func:`delete_runs` ``(db, refs, force=False) -> list[str]`` -- delete runs (their items
  and scalars go with them; the LLM calls stay in the cache, no longer linked to a run);
  a run whose process is alive is refused in one line, ``force`` or not (``force``: a run
  marked running whose process is gone).  :func:`check_deletable` is the same refusal
  without deleting (asked before a confirmation).

A record (``dict``; every value JSON-serialisable):

``ref`` ("5" / "t3"), ``id``, ``table`` ("runs" / "train_runs"), ``name``, ``kind``,
``dataset``, ``split``, ``model``, ``prompt_version``, ``kb_version``, ``hint_id``,
``hint_text``, ``params`` (dict), ``n`` (scored sessions; training: sessions trained on),
``metrics`` (:func:`re2llm_tui.evaluation.metrics.summarize` output or ``None``),
``failed`` (sessions whose call failed), ``calls`` / ``cached_calls`` / ``failed_calls``
(from the ``calls`` log), ``cost`` (USD), ``prompt_tokens``, ``completion_tokens``,
``reasoning_tokens`` (of the completion tokens, a reasoning model's hidden thinking),
``created_at``, ``finished_at``, ``status``, ``pid`` (the process writing it),
``alive`` (that process is running), ``error`` (what ended a failed run); training runs
add ``seed``, ``step``,
``total_steps``, ``final_reward``, ``best_reward`` (of ``charts/reward_mean``),
``final_eval_reward``, ``best_eval_reward`` (of ``charts/eval_reward``), ``best_step``,
``summary``, ``checkpoint``.
"""

from __future__ import annotations

import json
import re

from re2llm_tui.errors import UserError
from re2llm_tui.store.runs import writer_alive
from re2llm_tui.store.workspace import transaction

#: the kind of a training run in the catalog
TRAIN = "train"
#: ``list_runs(kind=OUTPUT)``: every output run (score, recommend, evaluate ...), no training run
OUTPUT = "output"
#: the scalar a training run's reward is read from, and its held-out evaluation
REWARD_TAG = "charts/reward_mean"
EVAL_TAG = "charts/eval_reward"

_REF = re.compile(r"^\s*(?P<t>[tT])?(?P<id>\d+)\s*$")


def parse_ref(ref) -> tuple[str, int]:
    """``("runs", 5)`` for ``5`` / ``"5"``, ``("train_runs", 3)`` for ``"t3"``; a one-line
    :class:`UserError` for anything else."""
    if isinstance(ref, int) and not isinstance(ref, bool):
        return "runs", ref
    m = _REF.match(str(ref))
    if not m:
        raise UserError(f"not a run id: {str(ref)!r} (a number, or t<number> for a training "
                        "run; see `re2llm-tui runs list`)")
    return ("train_runs" if m.group("t") else "runs"), int(m.group("id"))


def ref_of(table: str, run_id: int) -> str:
    return f"t{run_id}" if table == "train_runs" else str(run_id)


def _json(value, default):
    if not value:
        return default
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return default


# --------------------------------------------------------------------------- output runs

def _by_run(db, select: str, run_ids: list[int] | None) -> dict[int, dict]:
    """The rows of ``select`` (up to its FROM clause) grouped by ``run_id``: of ``run_ids``
    only (None: of every run)."""
    if run_ids is None:
        where, args = "run_id IS NOT NULL", []
    else:
        where, args = f"run_id IN ({', '.join('?' for _ in run_ids)})", list(run_ids)
    return {r["run_id"]: r for r in db.query(f"{select} WHERE {where} GROUP BY run_id", args)}


def _call_stats(db, run_ids: list[int] | None = None) -> dict[int, dict]:
    return _by_run(db, "SELECT run_id, COUNT(*) AS calls, SUM(cached) AS cached_calls, "
                       "SUM(status='failed') AS failed_calls, SUM(cost) AS cost, "
                       "SUM(prompt_tokens) AS prompt_tokens, "
                       "SUM(completion_tokens) AS completion_tokens, "
                       "SUM(reasoning_tokens) AS reasoning_tokens FROM calls", run_ids)


def _item_stats(db, run_ids: list[int] | None = None) -> dict[int, dict]:
    return _by_run(db, "SELECT run_id, COUNT(*) AS sessions, "
                       "SUM(error IS NULL AND label_ok=1) AS scored, "
                       "SUM(error IS NOT NULL AND label_ok=1) AS failed, "
                       "SUM(label_ok=0) AS label_mismatches FROM run_items", run_ids)


def _output_record(row: dict, items: dict | None, calls: dict | None) -> dict:
    params = _json(row.get("params"), {})
    metrics = _json(row.get("metrics"), None)
    items = items or {}
    calls = calls or {}
    n = metrics.get("n") if isinstance(metrics, dict) and "n" in metrics else \
        int(items.get("scored") or 0)
    call_cost = float(calls.get("cost") or 0.0)
    return {
        "ref": str(row["id"]), "id": row["id"], "table": "runs",
        "name": row["name"], "kind": row["kind"], "dataset": row["dataset"],
        "split": row["split"], "model": row.get("model"),
        "prompt_version": row.get("prompt_version"),
        "kb_version": params.get("kb_version") if isinstance(params, dict) else None,
        "hint_id": row.get("hint_id"), "hint_text": row.get("hint_text"),
        "params": params if isinstance(params, dict) else {"params": params},
        "n": n, "metrics": metrics,
        "sessions": int(items.get("sessions") or 0),
        "failed": max(int(row.get("n_failed") or 0), int(items.get("failed") or 0)),
        "label_mismatches": int(items.get("label_mismatches") or 0),
        "calls": int(calls.get("calls") or 0),
        "cached_calls": int(calls.get("cached_calls") or 0),
        "failed_calls": int(calls.get("failed_calls") or 0),
        # the call log is the truth when the run made calls; an import has none
        "cost": call_cost if calls.get("calls") else float(row.get("cost") or 0.0),
        "prompt_tokens": int(calls.get("prompt_tokens") or 0),
        "completion_tokens": int(calls.get("completion_tokens") or 0),
        # of the completion tokens, spent on hidden reasoning (a reasoning model)
        "reasoning_tokens": int(calls.get("reasoning_tokens") or 0),
        "created_at": row.get("created_at"), "finished_at": row.get("finished_at"),
        "status": row["status"], "pid": row.get("pid"), "alive": writer_alive(row),
        "error": row.get("error"),
    }


# --------------------------------------------------------------------------- training runs

def _reward_stats(db, train_ids: list[int] | None = None) -> dict[int, dict]:
    """Per training run: final and best of the reward scalars (one pass over the table)."""
    sql = ("SELECT run_id, step, name, value FROM train_scalars WHERE name IN (?, ?) "
           "AND value IS NOT NULL")
    args: list = [REWARD_TAG, EVAL_TAG]
    if train_ids is not None:
        sql += f" AND run_id IN ({', '.join('?' for _ in train_ids)})"
        args += list(train_ids)
    out: dict[int, dict] = {}
    for run_id, step, name, value in db.execute(sql + " ORDER BY run_id, step", args):
        st = out.setdefault(run_id, {"final_reward": None, "best_reward": None,
                                     "best_step": None, "final_eval_reward": None,
                                     "best_eval_reward": None})
        if name == REWARD_TAG:
            st["final_reward"] = value
            if st["best_reward"] is None or value > st["best_reward"]:
                st["best_reward"], st["best_step"] = value, step
        else:
            st["final_eval_reward"] = value
            if st["best_eval_reward"] is None or value > st["best_eval_reward"]:
                st["best_eval_reward"] = value
    return out


def _train_record(row: dict, rewards: dict | None) -> dict:
    config = _json(row.get("config"), {})
    summary = _json(row.get("summary"), {})
    rewards = rewards or {}
    alive = writer_alive(row)
    return {
        "ref": f"t{row['id']}", "id": row["id"], "table": "train_runs",
        "name": f"train {row['dataset']} {row['model']} seed {row['seed']}",
        "kind": TRAIN, "dataset": row["dataset"], "split": "train", "model": row["model"],
        "prompt_version": None, "kb_version": row.get("kb_version"),
        "hint_id": None, "hint_text": None,
        "params": config if isinstance(config, dict) else {"config": config},
        "n": row.get("n_sessions"), "metrics": None,
        "sessions": row.get("n_sessions"),
        "failed": int(summary.get("failed") or 0), "label_mismatches": 0,
        "calls": int(summary.get("llm_calls_total") or summary.get("llm_calls") or 0),
        "cached_calls": int(summary.get("cache_hits") or 0),
        "failed_calls": int(summary.get("failed") or 0),
        "cost": float(summary.get("cost") or 0.0),
        "prompt_tokens": 0, "completion_tokens": 0,
        "reasoning_tokens": int(summary.get("reasoning_tokens") or 0),
        "created_at": row.get("created_at"), "finished_at": row.get("finished_at"),
        "status": row["status"],
        "seed": row["seed"], "step": row["step"], "total_steps": row["total_steps"],
        "final_reward": rewards.get("final_reward"), "best_reward": rewards.get("best_reward"),
        "best_step": rewards.get("best_step"),
        "final_eval_reward": rewards.get("final_eval_reward"),
        "best_eval_reward": rewards.get("best_eval_reward"),
        "hint_ids": _json(row.get("hint_ids"), []),
        "alive": alive, "pid": row.get("pid"), "summary": summary, "checkpoint": row.get("checkpoint"),
        "error": row.get("error"),
    }


# --------------------------------------------------------------------------- reading

def list_runs(db, *, dataset: str | None = None, kind: str | None = None) -> list[dict]:
    """Every run (see the module docstring for a record's fields), output runs by id, then
    training runs by id; ``dataset`` / ``kind`` filter (``kind="train"``: training runs,
    :data:`OUTPUT`: every output run)."""
    out: list[dict] = []
    if kind != TRAIN:
        where, args = [], []
        if dataset is not None:
            where.append("dataset=?")
            args.append(dataset)
        if kind not in (None, OUTPUT):
            where.append("kind=?")
            args.append(kind)
        rows = list(db.query("SELECT * FROM runs" + (" WHERE " + " AND ".join(where)
                                                     if where else "") + " ORDER BY id", args))
        if rows:
            items, calls = _item_stats(db), _call_stats(db)
            out += [_output_record(r, items.get(r["id"]), calls.get(r["id"])) for r in rows]
    if kind is None or kind == TRAIN:
        sql, args = "SELECT * FROM train_runs", []
        if dataset is not None:
            sql += " WHERE dataset=?"
            args.append(dataset)
        rows = list(db.query(sql + " ORDER BY id", args))
        if rows:
            rewards = _reward_stats(db)
            out += [_train_record(r, rewards.get(r["id"])) for r in rows]
    return out


def run_kinds(db) -> list[str]:
    """The kinds present in the workspace (``train`` when there is a training run)."""
    kinds = [r[0] for r in db.execute("SELECT DISTINCT kind FROM runs ORDER BY kind")]
    if db.execute("SELECT 1 FROM train_runs LIMIT 1").fetchone():
        kinds.append(TRAIN)
    return kinds


def get_record(db, ref) -> dict:
    """One run's record by reference (``5`` / ``"t3"``); one line when there is none."""
    table, run_id = parse_ref(ref)
    rows = list(db.query(f"SELECT * FROM {table} WHERE id=?", [run_id]))
    if not rows:
        what = "training run" if table == "train_runs" else "run"
        raise UserError(f"no {what} with id {ref_of(table, run_id)} (see `re2llm-tui runs list`)")
    if table == "train_runs":
        return _train_record(rows[0], _reward_stats(db, [run_id]).get(run_id))
    return _output_record(rows[0], _item_stats(db, [run_id]).get(run_id),
                          _call_stats(db, [run_id]).get(run_id))


def run_outcomes(db, run_id: int) -> dict[str, int | None | list]:
    """session id -> target rank (1-based or ``None``: not ranked) of an output run's scored
    sessions: those whose call succeeded and whose label matched.  A run of ``--samples N``
    gives each session the list of its samples' ranks (what
    :func:`~re2llm_tui.evaluation.metrics.summarize` averages)."""
    return {sid: [p.get("target_rank") for p in json.loads(samples)] if samples else rank
            for sid, rank, samples in db.execute(
                "SELECT session_id, target_rank, samples FROM run_items WHERE run_id=? "
                "AND error IS NULL AND label_ok=1 ORDER BY session_id", [run_id])}


def session_counts(db, run_id: int) -> dict:
    """An output run's sessions: ``sessions`` (stored), ``scored``, ``failed`` (call
    failed), ``label_mismatches``, and of the scored: ``top1``, ``top10`` (target ranked 1 /
    within 10), ``unranked`` (target not in the list)."""
    row = db.execute(
        "SELECT COUNT(*), SUM(error IS NULL AND label_ok=1), SUM(error IS NOT NULL AND label_ok=1), "
        "SUM(label_ok=0), SUM(error IS NULL AND label_ok=1 AND target_rank=1), "
        "SUM(error IS NULL AND label_ok=1 AND target_rank<=10), "
        "SUM(error IS NULL AND label_ok=1 AND target_rank IS NULL) "
        "FROM run_items WHERE run_id=?", [run_id]).fetchone()
    keys = ("sessions", "scored", "failed", "label_mismatches", "top1", "top10", "unranked")
    return {k: int(v or 0) for k, v in zip(keys, row)}


def train_scalars(db, train_id: int, names: list[str] | None = None) -> dict[str, list]:
    """A training run's scalars: name -> ``[(step, value), ...]`` in step order (a histogram's
    value is its list of counts)."""
    sql = "SELECT step, name, value, value_json FROM train_scalars WHERE run_id=?"
    args: list = [train_id]
    if names:
        sql += f" AND name IN ({', '.join('?' for _ in names)})"
        args += list(names)
    out: dict[str, list] = {}
    for step, name, value, vjson in db.execute(sql + " ORDER BY name, step", args):
        out.setdefault(name, []).append((int(step), _json(vjson, None) if vjson else value))
    return out


# --------------------------------------------------------------------------- deleting

def _refusal(rec: dict, force: bool) -> str | None:
    """Why the run of ``rec`` may not be deleted now (one line), or None."""
    what = "training run" if rec["table"] == "train_runs" else "run"
    if rec["alive"]:
        return (f"{what} {rec['ref']} is running in process {rec['pid']}; stop it first "
                "(--force never deletes a run whose process is alive)")
    if rec["status"] == "running" and not force:
        gone = f"its process {rec['pid']} is gone" if rec.get("pid") else \
            "no process is recorded for it"
        return (f"{what} {rec['ref']} is marked running but {gone}; pass --force to "
                "delete it")
    return None


def check_deletable(db, refs, *, force: bool = False) -> list[dict]:
    """The records of ``refs``; a one-line :class:`UserError` for the first run that may not
    be deleted: one whose process is alive (always), one marked running whose process is
    gone (unless ``force``)."""
    records = [get_record(db, ref) for ref in refs]
    for rec in records:
        reason = _refusal(rec, force)
        if reason:
            raise UserError(reason)
    return records


def delete_runs(db, refs, *, force: bool = False) -> list[str]:
    """Delete the runs ``refs`` in one transaction; returns their references.

    Checked inside the transaction that deletes (a write lock: no process can start or
    resume writing one of them in between): a run whose process is alive is refused,
    ``force`` or not; a run marked running whose process is gone (killed) needs ``force``
    (:func:`check_deletable`).  Nothing is deleted when one is refused.  Items and scalars
    go with their run; the LLM calls stay (they are the cache) but no longer name the run.
    """
    for ref in refs:
        parse_ref(ref)
    with transaction(db):
        records = check_deletable(db, refs, force=force)
        for rec in records:
            # ids are never reused (store.runs.next_id_sql): remember the highest deleted
            db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                       "SET value=MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
                       [f"{rec['table']}_max_deleted_id", str(rec["id"])])
            if rec["table"] == "train_runs":
                db.execute("DELETE FROM train_scalars WHERE run_id=?", [rec["id"]])
                db.execute("DELETE FROM train_runs WHERE id=?", [rec["id"]])
            else:
                db.execute("DELETE FROM run_items WHERE run_id=?", [rec["id"]])
                db.execute("UPDATE calls SET run_id=NULL WHERE run_id=?", [rec["id"]])
                db.execute("DELETE FROM runs WHERE id=?", [rec["id"]])
    return [rec["ref"] for rec in records]
