"""Reflections: the stored Reflective Exploration of sessions (one row per reflection, its
turns in ``reflection_turns``, its proposed hints and their checks in ``reflection_hints``).

Reads only; :mod:`re2llm_tui.exploration.reflection` writes them.
"""

from __future__ import annotations

from re2llm_tui.data.release import canonical_domain


def reflections_of(db, dataset: str, session_id: str | None = None) -> list[dict]:
    """The reflections of a dataset (of one session if given), oldest first."""
    sql = "SELECT * FROM reflections WHERE dataset=?"
    args = [canonical_domain(dataset)]
    if session_id:
        sql += " AND session_id=?"
        args.append(session_id)
    return list(db.query(sql + " ORDER BY id", args))


def reflection_counts(db, dataset: str) -> dict[str, tuple[int, int]]:
    """session id -> (how many reflections, how many hints they proposed in all)."""
    return {r["session_id"]: (r["n"], r["p"]) for r in db.query(
        "SELECT session_id, COUNT(*) AS n, COALESCE(SUM(n_proposed), 0) AS p "
        "FROM reflections WHERE dataset=? GROUP BY session_id", [canonical_domain(dataset)])}


def reflection_turns(db, reflection_id: int) -> list[dict]:
    """A reflection's messages, in order."""
    return list(db.query("SELECT * FROM reflection_turns WHERE reflection_id=? ORDER BY seq",
                         [reflection_id]))


def reflection_hints(db, reflection_id: int) -> list[dict]:
    """A reflection's proposed hints with the outcome of each check, in proposal order."""
    return list(db.query("SELECT * FROM reflection_hints WHERE reflection_id=? ORDER BY idx",
                         [reflection_id]))
