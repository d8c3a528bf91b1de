"""Runs: named sets of LLM outputs over a split's sessions, stored in the workspace.

A run being written is ``running`` and records its process (``runs.pid``): it is set when
the run is created or resumed (:func:`create_run`, :func:`resume_run`) and cleared when it
ends -- ``done`` / ``stopped`` (:func:`finish_run`) or ``failed`` with the error that ended
it (:func:`fail_run`; :func:`ending` does it for any exception).  A run whose process is
alive is never deleted (:func:`re2llm_tui.store.catalog.delete_runs`).
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from re2llm_tui.errors import UserError


def next_id_sql(table: str) -> str:
    """The id a new row of ``table`` (``runs`` / ``train_runs``) gets, as an SQL expression:
    above every id it ever had, so a deleted run's id is never given to another run (a
    reflection's ``run:<id>`` provenance or a note citing run 5 keeps meaning that run;
    :func:`re2llm_tui.store.catalog.delete_runs` records the highest id it deleted)."""
    return (f"(SELECT MAX(COALESCE((SELECT MAX(id) FROM {table}), 0), COALESCE((SELECT "
            f"CAST(value AS INTEGER) FROM meta WHERE key='{table}_max_deleted_id'), 0)) + 1)")


def create_run(db, *, name: str, kind: str, dataset: str, split: str, model: str | None = None,
               prompt_version: str | None = None, hint_id: int | None = None,
               hint_text: str | None = None, params: dict | None = None) -> int:
    """A new ``running`` run written by this process; returns its id."""
    cur = db.execute(
        "INSERT INTO runs(id, name, kind, dataset, split, model, prompt_version, hint_id, "
        f"hint_text, params, pid) VALUES ({next_id_sql('runs')},?,?,?,?,?,?,?,?,?,?)",
        [name, kind, dataset, split, model, prompt_version, hint_id, hint_text,
         json.dumps(params or {}, sort_keys=True), os.getpid()])
    return cur.lastrowid


def writer_alive(run: dict) -> bool:
    """Whether the process recorded as writing ``run`` (a row of ``runs`` or
    ``train_runs``) is alive: a ``running`` run whose process exists (this one included)."""
    from re2llm_tui.control import pid_alive

    pid = run.get("pid")
    return run.get("status") == "running" and bool(pid) and (
        pid == os.getpid() or pid_alive(pid))


def resume_run(db, run_id: int) -> bool:
    """This process takes the unfinished run over: ``running`` again, with its pid.  False
    when the run is gone (deleted meanwhile) or another live process is writing it."""
    from re2llm_tui.store.workspace import transaction

    with transaction(db):
        rows = list(db.query("SELECT status, pid FROM runs WHERE id=?", [run_id]))
        if not rows or writer_alive(rows[0]):
            return False
        db.execute("UPDATE runs SET status='running', finished_at=NULL, error=NULL, pid=? "
                   "WHERE id=?", [os.getpid(), run_id])
    return True


def add_run_item(db, run_id: int, session_id: str, **cols: Any) -> None:
    """Insert or replace one session's outcome (JSON-encodes lists)."""
    record = {"run_id": run_id, "session_id": session_id}
    for key, value in cols.items():
        record[key] = json.dumps(value) if isinstance(value, (list, dict, tuple)) else value
    keys = ", ".join(record)
    marks = ", ".join("?" for _ in record)
    db.execute(f"INSERT OR REPLACE INTO run_items({keys}) VALUES ({marks})", list(record.values()))


def finish_run(db, run_id: int, metrics: dict | None, status: str = "done", n_failed: int = 0,
               cost: float = 0.0, error: str | None = None) -> None:
    """The run ended (``done`` / ``stopped``; ``failed`` with ``error``): no process
    writes it any more."""
    db.execute(
        "UPDATE runs SET metrics=?, status=?, n_failed=?, cost=?, pid=NULL, error=?, "
        "finished_at=strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id=?",
        [json.dumps(metrics) if metrics is not None else None, status, n_failed, cost,
         error, run_id])


def fail_run(db, run_id: int, error: str) -> None:
    """The run was ended by ``error`` (only if it is still marked running): ``failed``,
    with the error kept, no process."""
    db.execute("UPDATE runs SET status='failed', error=?, pid=NULL, "
               "finished_at=strftime('%Y-%m-%dT%H:%M:%fZ','now') "
               "WHERE id=? AND status='running'", [error, run_id])


def error_text(exc: BaseException) -> str:
    """An exception as the one line kept with a failed run."""
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


@contextlib.contextmanager
def ending(db, run_id: int):
    """Around the writing of a run: an exception that escapes (a refused key, a workspace
    error, any bug) marks it ``failed`` with the error, and Ctrl+C ``stopped``, before it
    propagates -- a run is never left ``running`` by a process that has given it up."""
    try:
        yield
    except BaseException as exc:
        try:
            if isinstance(exc, KeyboardInterrupt):
                db.execute("UPDATE runs SET status='stopped', pid=NULL, error='interrupted', "
                           "finished_at=strftime('%Y-%m-%dT%H:%M:%fZ','now') "
                           "WHERE id=? AND status='running'", [run_id])
            else:
                fail_run(db, run_id, error_text(exc))
        except Exception:  # noqa: BLE001 - the workspace itself failed: report the first error
            pass
        raise


def get_run(db, run_id: int) -> dict:
    rows = list(db.query("SELECT * FROM runs WHERE id=?", [run_id]))
    if not rows:
        raise UserError(f"no run with id {run_id}")
    run = rows[0]
    for key in ("params", "metrics"):
        run[key] = json.loads(run[key]) if run.get(key) else None
    return run


def find_runs(db, *, dataset: str | None = None, kind: str | None = None,
              name: str | None = None) -> list[dict]:
    where, args = [], []
    for col, val in (("dataset", dataset), ("kind", kind), ("name", name)):
        if val is not None:
            where.append(f"{col}=?")
            args.append(val)
    sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
    return list(db.query(sql, args))


def run_items(db, run_id: int) -> list[dict]:
    items = list(db.query("SELECT * FROM run_items WHERE run_id=? ORDER BY session_id", [run_id]))
    for it in items:
        for key in ("ranking", "hallucinations"):
            it[key] = json.loads(it[key]) if it.get(key) else []
    return items


def run_ranks(db, run_id: int) -> dict[str, int | None]:
    """session_id -> target rank (1-based or None) for a run."""
    return {r["session_id"]: r["target_rank"] for r in
            db.query("SELECT session_id, target_rank FROM run_items WHERE run_id=?", [run_id])}


#: run kinds whose rankings are LLM recommendations of a session
RANKING_KINDS = ("score", "recommend", "evaluate")


def baseline_ranks(db, dataset: str, split: str) -> tuple[dict[str, int | None], int]:
    """session id -> target rank of its newest no-hint ranking (score or recommend runs of
    the split, failed items excluded), and how many runs contributed."""
    rows = db.query(
        "SELECT r.id AS run_id, i.session_id, i.target_rank FROM run_items i "
        "JOIN runs r ON r.id = i.run_id WHERE r.dataset=? AND r.split=? "
        "AND r.kind IN ('score', 'recommend') AND (r.hint_id IS NULL OR r.hint_id = 0) "
        "AND (r.hint_text IS NULL OR r.hint_text = '') AND i.error IS NULL "
        "ORDER BY r.id", [dataset, split])
    ranks: dict[str, int | None] = {}
    run_ids = set()
    for r in rows:
        ranks[r["session_id"]] = r["target_rank"]
        run_ids.add(r["run_id"])
    return ranks, len(run_ids)


def session_outcomes(db, dataset: str, session_id: str,
                     kinds: tuple[str, ...] = RANKING_KINDS) -> list[dict]:
    """Every stored outcome of one session in runs of ``kinds``, oldest run first: the run's
    ``id, name, kind, hint_id, hint_text, params`` with the item's ``ranking,
    hallucinations, target_rank, reply, error, call_id`` (``params``, ``ranking`` and
    ``hallucinations`` decoded from JSON)."""
    rows = list(db.query(
        "SELECT r.id, r.name, r.kind, r.hint_id, r.hint_text, r.params, i.ranking, "
        "i.hallucinations, i.target_rank, i.reply, i.error, i.call_id FROM run_items i "
        "JOIN runs r ON r.id = i.run_id WHERE r.dataset=? AND i.session_id=? "
        f"AND r.kind IN ({', '.join('?' for _ in kinds)}) ORDER BY r.id",
        [dataset, session_id, *kinds]))
    for r in rows:
        r["params"] = json.loads(r["params"]) if r.get("params") else {}
        r["ranking"] = json.loads(r["ranking"] or "[]")
        r["hallucinations"] = json.loads(r["hallucinations"] or "[]")
    return rows


def call_reasoning(db, call_id: int | None) -> str:
    """The thinking a reasoning model returned with call ``call_id`` (a cache hit: the
    original call's), ``""`` when none was stored (not a reasoning model, or no call)."""
    if call_id is None:
        return ""
    row = db.execute("SELECT reasoning, cache_of FROM calls WHERE id=?", [call_id]).fetchone()
    if row is None:
        return ""
    if not row[0] and row[1] is not None:
        row = db.execute("SELECT reasoning, cache_of FROM calls WHERE id=?",
                         [row[1]]).fetchone() or (None, None)
    return row[0] or ""


def stored_baseline(db, session, model: str, *, run_id: int | None = None) -> dict | None:
    """The newest no-hint run item for this session (same model preferred; score imports,
    which have no model, also count)."""
    sql = ("SELECT ri.run_id, ri.reply, ri.ranking FROM run_items ri JOIN runs r ON r.id = ri.run_id "
           "WHERE r.dataset=? AND r.split=? AND ri.session_id=? AND ri.error IS NULL "
           "AND ri.label_ok=1 AND ri.ranking IS NOT NULL "
           "AND COALESCE(r.hint_id, 0)=0 AND COALESCE(r.hint_text, '')='' ")
    args: list = [session.domain, session.split, session.id]
    if run_id is not None:
        sql += "AND r.id=? "
        args.append(run_id)
    else:
        sql += "AND r.kind IN ('recommend','score','baseline') AND (r.model=? OR r.model IS NULL) "
        args.append(model)
    sql += "ORDER BY (r.model IS NOT NULL) DESC, r.id DESC LIMIT 1"
    rows = list(db.query(sql, args))
    if not rows:
        return None
    row = rows[0]
    ranking = json.loads(row["ranking"]) if row["ranking"] else []
    reply = row["reply"] or "\n".join(f"{i}. {session.candidates[c]}"
                                      for i, c in enumerate(ranking, 1))
    return {"source": f"run:{row['run_id']}", "reply": reply, "ranking": ranking}
