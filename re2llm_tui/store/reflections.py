"""Reflections: the stored Reflective Exploration of sessions (one row per reflection, its
turns in ``reflection_turns``, its proposed hints and their checks in ``reflection_hints``).

:class:`ReflectionWriter` writes one reflection's rows as it goes (autocommit: a stopped run
keeps what it did); the readers serve the app, the CLI and the explore loop.
"""

from __future__ import annotations

import json

from re2llm_tui.dataset_names import dataset_key
from re2llm_tui.errors import UserError

_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"


def reflections_of(db, dataset: str, session_id: str | None = None) -> list[dict]:
    """The reflections of a dataset (of one session if given), oldest first."""
    sql = "SELECT * FROM reflections WHERE dataset=?"
    args = [dataset_key(dataset)]
    if session_id:
        sql += " AND session_id=?"
        args.append(session_id)
    return list(db.query(sql + " ORDER BY id", args))


def reflection_counts(db, dataset: str) -> dict[str, tuple[int, int]]:
    """session id -> (how many reflections, how many hints they proposed in all)."""
    return {r["session_id"]: (r["n"], r["p"]) for r in db.query(
        "SELECT session_id, COUNT(*) AS n, COALESCE(SUM(n_proposed), 0) AS p "
        "FROM reflections WHERE dataset=? GROUP BY session_id", [dataset_key(dataset)])}


def reflection_turns(db, reflection_id: int) -> list[dict]:
    """A reflection's messages, in order."""
    return list(db.query("SELECT * FROM reflection_turns WHERE reflection_id=? ORDER BY seq",
                         [reflection_id]))


def reflection_hints(db, reflection_id: int) -> list[dict]:
    """A reflection's proposed hints with the outcome of each check, in proposal order."""
    return list(db.query("SELECT * FROM reflection_hints WHERE reflection_id=? ORDER BY idx",
                         [reflection_id]))


def explored_sessions(db, dataset: str, model: str, prompt_version: str) -> set[str]:
    """Sessions finished (reflected or hit) with this model and prompt version."""
    return {r[0] for r in db.execute(
        "SELECT session_id FROM reflections WHERE dataset=? AND model=? AND prompt_version=? "
        "AND status IN ('done','hit')", [dataset_key(dataset), model, prompt_version])}


def reflection_record(db, reflection_id: int) -> dict:
    """A reflection with its messages (in order) and proposed hints: for display and tests."""
    rows = list(db.query("SELECT * FROM reflections WHERE id=?", [reflection_id]))
    if not rows:
        raise UserError(f"no reflection with id {reflection_id}")
    rec = rows[0]
    rec["params"] = json.loads(rec["params"]) if rec["params"] else {}
    rec["baseline_ranking"] = json.loads(rec["baseline_ranking"]) if rec["baseline_ranking"] else None
    rec["turns"] = reflection_turns(db, reflection_id)
    rec["hints"] = reflection_hints(db, reflection_id)
    return rec


class ReflectionWriter:
    """Writes one reflection's rows: the reflection, its messages, its proposals' checks."""

    def __init__(self, db, *, dataset: str, session_id: str, model: str, prompt_version: str,
                 params: dict):
        self.db = db
        cur = db.execute(
            "INSERT INTO reflections(dataset, session_id, model, prompt_version, params) "
            "VALUES (?,?,?,?,?)",
            [dataset, session_id, model, prompt_version, json.dumps(params, sort_keys=True)])
        self.id = cur.lastrowid
        self.seq = 0

    def message(self, kind: str, role: str, content: str, *, turn: int | None = None,
                proposal: int | None = None, source: str | None = None,
                call_id: int | None = None) -> None:
        self.seq += 1
        self.db.execute(
            "INSERT INTO reflection_turns(reflection_id, seq, turn, kind, role, content, "
            "proposal, source, call_id) VALUES (?,?,?,?,?,?,?,?,?)",
            [self.id, self.seq, turn, kind, role, content or "", proposal, source, call_id])

    def baseline(self, source: str, ranking: list[int], rank: int | None) -> None:
        self.db.execute("UPDATE reflections SET baseline_source=?, baseline_ranking=?, "
                        "baseline_rank=? WHERE id=?", [source, json.dumps(ranking), rank, self.id])

    def proposal(self, check: dict) -> None:
        """One proposed hint and its checks so far (the columns of ``reflection_hints``)."""
        cols = ["reflection_id", *check]
        self.db.execute(
            f"INSERT OR REPLACE INTO reflection_hints({', '.join(cols)}) "
            f"VALUES ({', '.join('?' for _ in cols)})", [self.id, *check.values()])

    def finish(self, status: str, counts: dict, error: str | None = None) -> None:
        """Close the reflection with its status and counts (``n_proposed``, ``n_added``...)."""
        sets = ", ".join(f"{k}=?" for k in counts)
        self.db.execute(f"UPDATE reflections SET status=?, error=?, {sets}, finished_at={_NOW} "
                        "WHERE id=?", [status, error, *counts.values(), self.id])
