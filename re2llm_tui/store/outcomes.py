"""The reward table (``reward_outcomes``): all of its SQL.

:mod:`re2llm_tui.utilization.rewards` fills it (one outcome per dataset, model, context,
session and hint text; ``hint_key`` '' = no hint) through :func:`load` and :func:`put`; the
rest answers what the evidence view, the reward-table view, ``rewards export``, the hint
statistics, evaluation and the run plan ask of it, so no layer above the store writes SQL
against it.
"""

from __future__ import annotations

import json


def _ids(col: str, prefix: str | None, inside: bool = True) -> tuple[str, list]:
    """SQL and arguments keeping the rows whose ``col`` starts (``inside``) or does not start
    with ``prefix`` (nothing when None): a range on the primary key's session id, so a
    split's outcomes are found without a scan and without reading any session."""
    if prefix is None:
        return "", []
    cond = f"{col} >= ? AND {col} < ?"
    return (f" AND ({cond})" if inside else f" AND NOT ({cond})"), \
        [prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)]


def contexts(db, dataset: str, model: str | None = None, prefix: str | None = None) -> list[dict]:
    """The (model, context) pairs with outcomes of ``dataset`` (of one ``model`` when given;
    of the sessions whose id starts with ``prefix`` when given), most outcomes first:
    ``{"model", "context", "n", "sessions", "baselines"}`` (``n`` outcomes over ``sessions``
    sessions, ``baselines`` of them without a hint)."""
    sql = ("SELECT model, context, COUNT(*) AS n, COUNT(DISTINCT session_id) AS sessions, "
           "SUM(hint_key = '') AS baselines FROM reward_outcomes WHERE dataset=?")
    args: list = [dataset]
    if model is not None:
        sql += " AND model=?"
        args.append(model)
    where, more = _ids("session_id", prefix)
    sql += where + " GROUP BY model, context ORDER BY n DESC, model, context"
    args += more
    return [{"model": m, "context": c, "n": int(n), "sessions": int(s), "baselines": int(b or 0)}
            for m, c, n, s, b in db.execute(sql, args)]


def outcomes(db, dataset: str, model: str, context: str,
             prefix: str | None = None) -> list[dict]:
    """Every outcome of one (dataset, model, context) (of the sessions whose id starts with
    ``prefix`` when given), by session then hint key:
    ``{"session_id", "hint_key", "hint_id", "target_rank", "ndcg"}``."""
    where, more = _ids("session_id", prefix)
    return [{"session_id": sid, "hint_key": key, "hint_id": hid, "target_rank": rank,
             "ndcg": float(ndcg)}
            for sid, key, hid, rank, ndcg in db.execute(
                "SELECT session_id, hint_key, hint_id, target_rank, ndcg FROM reward_outcomes "
                f"WHERE dataset=? AND model=? AND context=?{where} "
                "ORDER BY session_id, hint_key", [dataset, model, context, *more])]


def left_out(db, dataset: str, model: str, context: str, prefix: str) -> dict:
    """What one (dataset, model, context) holds on the sessions whose id does *not* start
    with ``prefix``: ``{"outcomes", "sessions", "rewards": {hint key: rewards}}`` (a reward:
    a hint's outcome with the same session's no-hint outcome)."""
    where, more = _ids("session_id", prefix, inside=False)
    n, sessions = db.execute(
        "SELECT COUNT(*), COUNT(DISTINCT session_id) FROM reward_outcomes WHERE dataset=? "
        f"AND model=? AND context=?{where}", [dataset, model, context, *more]).fetchone()
    where, more = _ids("h.session_id", prefix, inside=False)
    rewards = dict(db.execute(
        "SELECT h.hint_key, COUNT(*) FROM reward_outcomes h JOIN reward_outcomes b "
        "ON b.dataset = h.dataset AND b.model = h.model AND b.context = h.context "
        "AND b.session_id = h.session_id AND b.hint_key = '' WHERE h.dataset=? AND "
        f"h.model=? AND h.context=? AND h.hint_key != ''{where} GROUP BY h.hint_key",
        [dataset, model, context, *more]).fetchall())
    return {"outcomes": int(n), "sessions": int(sessions),
            "rewards": {k: int(v) for k, v in rewards.items()}}


def outcome(db, dataset: str, model: str, context: str, session_id: str,
            hint_key: str) -> dict | None:
    """One stored outcome with its ranking (candidate indices, best first), or None."""
    row = db.execute(
        "SELECT target_rank, ndcg, ranking, hint_id, call_id FROM reward_outcomes WHERE "
        "dataset=? AND model=? AND context=? AND session_id=? AND hint_key=?",
        [dataset, model, context, session_id, hint_key]).fetchone()
    if row is None:
        return None
    rank, ndcg, ranking, hid, call_id = row
    return {"target_rank": rank, "ndcg": float(ndcg), "hint_id": hid, "call_id": call_id,
            "ranking": [int(x) for x in json.loads(ranking)] if ranking else []}


def iter_outcomes(db, dataset: str, model: str | None = None, context: str | None = None,
                  prefix: str | None = None):
    """Every outcome of ``dataset`` (of one model / context when given; of the sessions whose
    id starts with ``prefix`` when given) paired with the no-hint outcome of the same
    session, model and context (``base_ndcg`` None when that is not stored), ordered by
    model, context, session, hint key: for the long-form export."""
    sql = ("SELECT h.model, h.context, h.session_id, h.hint_key, h.hint_id, h.target_rank, "
           "h.ndcg, b.target_rank, b.ndcg FROM reward_outcomes h LEFT JOIN reward_outcomes b "
           "ON b.dataset = h.dataset AND b.model = h.model AND b.context = h.context "
           "AND b.session_id = h.session_id AND b.hint_key = '' WHERE h.dataset = ?")
    args: list = [dataset]
    if model is not None:
        sql += " AND h.model = ?"
        args.append(model)
    if context is not None:
        sql += " AND h.context = ?"
        args.append(context)
    where, more = _ids("h.session_id", prefix)
    sql += where
    args += more
    sql += " ORDER BY h.model, h.context, h.session_id, h.hint_key"
    for m, c, sid, key, hid, rank, ndcg, brank, bndcg in db.execute(sql, args):
        yield {"model": m, "context": c, "session_id": sid, "hint_key": key, "hint_id": hid,
               "target_rank": rank, "ndcg": float(ndcg), "base_rank": brank,
               "base_ndcg": None if bndcg is None else float(bndcg)}


# --------------------------------------------------------------------------- the table's writer

def load(db, dataset: str, model: str, context: str, keys: list[str]):
    """The stored outcomes of ``keys`` (hint keys) under one (dataset, model, context):
    ``(session_id, hint_key, target_rank, ndcg, ranking JSON, samples JSON)`` rows."""
    marks = ", ".join("?" for _ in keys)
    return db.execute(
        "SELECT session_id, hint_key, target_rank, ndcg, ranking, samples FROM reward_outcomes "
        f"WHERE dataset=? AND model=? AND context=? AND hint_key IN ({marks})",
        [dataset, model, context, *keys])


def known_keys(db, dataset: str, model: str, context: str, keys: list[str]) -> dict[str, set]:
    """session id -> the hint keys among ``keys`` with a stored outcome (nothing else read)."""
    known: dict[str, set] = {}
    marks = ", ".join("?" for _ in keys)
    for sid, key in db.execute(
            "SELECT session_id, hint_key FROM reward_outcomes WHERE dataset=? AND model=? AND "
            f"context=? AND hint_key IN ({marks})", [dataset, model, context, *keys]):
        known.setdefault(sid, set()).add(key)
    return known


def sessions_with_outcomes(db, dataset: str, model: str, prefix: str = "") -> list[str]:
    """The session ids (starting with ``prefix``) with an outcome of ``model``, in order."""
    return [r[0] for r in db.execute(
        "SELECT DISTINCT session_id FROM reward_outcomes WHERE dataset=? AND model=? "
        "AND session_id LIKE ? ORDER BY session_id", [dataset, model, prefix + "%"])]


def reply_of(db, dataset: str, model: str, context: str, session_id: str,
             hint_key: str) -> str | None:
    """The reply text of the call behind one outcome (None: not stored or no longer kept)."""
    row = db.execute(
        "SELECT c.response FROM reward_outcomes o JOIN calls c ON c.id = o.call_id "
        "WHERE o.dataset=? AND o.model=? AND o.context=? AND o.session_id=? "
        "AND o.hint_key=?", [dataset, model, context, session_id, hint_key]).fetchone()
    return None if row is None else row[0]


def put(db, *, dataset: str, model: str, context: str, session_id: str, hint_key: str,
        hint_id: int, target_rank, ndcg: float, ranking: list[int], call_id,
        samples: list[dict] | None = None) -> None:
    """Store (replace) one outcome, committed at once."""
    from re2llm_tui.store.workspace import transaction

    with transaction(db):
        db.execute(
            "INSERT OR REPLACE INTO reward_outcomes (dataset, model, context, session_id, "
            "hint_key, hint_id, target_rank, ndcg, ranking, call_id, samples) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [dataset, model, context, session_id, hint_key, hint_id, target_rank, ndcg,
             json.dumps(ranking), call_id,
             json.dumps(samples) if samples is not None else None])


def mean_gains(db, dataset: str, context_like: str, model: str | None = None,
               prefix: str | None = None) -> dict:
    """hint key -> (mean of ndcg(hint) - ndcg(no hint), pairs) over the outcomes of
    ``dataset`` whose context is ``LIKE context_like`` (of one ``model`` when given; of the
    sessions whose id starts with ``prefix`` when given)."""
    sql = ("SELECT h.hint_key AS k, AVG(h.ndcg - b.ndcg) AS mean, COUNT(*) AS n "
           "FROM reward_outcomes h JOIN reward_outcomes b ON b.dataset = h.dataset "
           "AND b.model = h.model AND b.context = h.context AND b.session_id = h.session_id "
           "AND b.hint_key = '' WHERE h.dataset = ? AND h.hint_key != '' "
           "AND h.context LIKE ?")
    args: list = [dataset, context_like]
    if model is not None:
        sql += " AND h.model = ?"
        args.append(model)
    where, more = _ids("h.session_id", prefix)
    sql += where
    args += more
    return {r["k"]: (float(r["mean"]), int(r["n"]))
            for r in db.query(sql + " GROUP BY h.hint_key", args)}
