"""Reading the reward table (``reward_outcomes``) for curation and export.

The table is written by :mod:`re2llm_tui.utilization.rewards` (one outcome per dataset,
model, context, session and hint text; ``hint_key`` '' = no hint).  This module answers the
questions the evidence view, the reward-table view and ``rewards export`` ask of it, so no
layer above the store writes SQL against it.
"""

from __future__ import annotations

import json


def contexts(db, dataset: str, model: str | None = None) -> list[dict]:
    """The (model, context) pairs with outcomes of ``dataset`` (of one ``model`` when given),
    most outcomes first: ``{"model", "context", "n", "sessions", "baselines"}`` (``n``
    outcomes over ``sessions`` sessions, ``baselines`` of them without a hint)."""
    sql = ("SELECT model, context, COUNT(*) AS n, COUNT(DISTINCT session_id) AS sessions, "
           "SUM(hint_key = '') AS baselines FROM reward_outcomes WHERE dataset=?")
    args: list = [dataset]
    if model is not None:
        sql += " AND model=?"
        args.append(model)
    sql += " GROUP BY model, context ORDER BY n DESC, model, context"
    return [{"model": m, "context": c, "n": int(n), "sessions": int(s), "baselines": int(b or 0)}
            for m, c, n, s, b in db.execute(sql, args)]


def outcomes(db, dataset: str, model: str, context: str) -> list[dict]:
    """Every outcome of one (dataset, model, context), by session then hint key:
    ``{"session_id", "hint_key", "hint_id", "target_rank", "ndcg"}``."""
    return [{"session_id": sid, "hint_key": key, "hint_id": hid, "target_rank": rank,
             "ndcg": float(ndcg)}
            for sid, key, hid, rank, ndcg in db.execute(
                "SELECT session_id, hint_key, hint_id, target_rank, ndcg FROM reward_outcomes "
                "WHERE dataset=? AND model=? AND context=? ORDER BY session_id, hint_key",
                [dataset, model, context])]


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


def iter_outcomes(db, dataset: str, model: str | None = None, context: str | None = None):
    """Every outcome of ``dataset`` (of one model / context when given) paired with the
    no-hint outcome of the same session, model and context (``base_ndcg`` None when that is
    not stored), ordered by model, context, session, hint key: for the long-form export."""
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
    sql += " ORDER BY h.model, h.context, h.session_id, h.hint_key"
    for m, c, sid, key, hid, rank, ndcg, brank, bndcg in db.execute(sql, args):
        yield {"model": m, "context": c, "session_id": sid, "hint_key": key, "hint_id": hid,
               "target_rank": rank, "ndcg": float(ndcg), "base_rank": brank,
               "base_ndcg": None if bndcg is None else float(bndcg)}
