"""The ``calls`` table's readers outside the LLM client (which writes it, with the cache's
lookups, in :mod:`re2llm_tui.llm.cache`): all of their SQL.

A command notes the last call id before it starts (:func:`last_call_id`) and reads what was
logged after it (:func:`failed_errors`, :func:`saved_since`); the cost estimates read the
cache (:func:`cached_keys`, :func:`cached_reply`) and the measured lengths and speeds
(:func:`completion_tokens`, :func:`rank_latencies`).
"""

from __future__ import annotations

import json
from typing import Iterable


def last_call_id(db) -> int:
    """The newest row id of the ``calls`` table (0 when empty)."""
    row = db.execute("SELECT COALESCE(MAX(id), 0) FROM calls").fetchone()
    return int(row[0] or 0)


def _since(sql: str, since_id: int, model: str | None, run_id: int | None,
           prefix: str = "") -> tuple[str, list]:
    args: list = [int(since_id)]
    if model is not None:
        sql += f" AND {prefix}model=?"
        args.append(model)
    if run_id is not None:
        sql += f" AND {prefix}run_id=?"
        args.append(run_id)
    return sql, args


def failed_errors(db, *, since_id: int, model: str | None = None,
                  run_id: int | None = None) -> list[str]:
    """The errors of the failed calls (not cache hits) logged after call ``since_id`` (of
    ``model``, or of ``run_id``)."""
    sql, args = _since("SELECT error FROM calls WHERE id > ? AND status='failed' AND cached=0",
                       since_id, model, run_id)
    return [e or "unknown error" for (e,) in db.execute(sql, args)]


def saved_since(db, *, since_id: int = 0, model: str | None = None,
                run_id: int | None = None) -> tuple[int, float, int]:
    """``(hits, cost of the calls that served them, calls with estimated usage)`` logged
    after ``since_id`` (of ``model``, of ``run_id`` when given)."""
    # MAX(cost, 0): a workspace written before costs were checked may hold negative ones
    sql, args = _since("SELECT COUNT(*), COALESCE(SUM(MAX(o.cost, 0)), 0) FROM calls h "
                       "JOIN calls o ON o.id = h.cache_of WHERE h.cached=1 AND h.id > ?",
                       since_id, model, run_id, prefix="h.")
    n, cost = db.execute(sql, args).fetchone()
    sql, args = _since("SELECT COUNT(*) FROM calls WHERE usage_estimated=1 AND cached=0 "
                       "AND id > ?", since_id, model, run_id)
    est = db.execute(sql, args).fetchone()[0]
    return int(n or 0), float(cost or 0.0), int(est or 0)


def response_of(db, call_id) -> str | None:
    """The reply text of one call (None: no such call, or no reply kept)."""
    row = db.execute("SELECT response FROM calls WHERE id=?", [call_id]).fetchone()
    return None if row is None else row[0]


def cached_keys(db, keys: Iterable[str]) -> set[str]:
    """The keys among ``keys`` with a successful reply in the ``calls`` table."""
    uniq = list(dict.fromkeys(k for k in keys if k))
    found: set[str] = set()
    for i in range(0, len(uniq), 500):
        chunk = uniq[i:i + 500]
        marks = ", ".join("?" for _ in chunk)
        found.update(r[0] for r in db.execute(
            f"SELECT DISTINCT key FROM calls WHERE status='ok' AND cached=0 AND key IN ({marks})",
            chunk))
    return found


def cached_reply(db, key: str | None) -> dict | None:
    """The cached reply of request ``key``: ``{"response", "ranking"}`` (``None``: not in
    the cache, or no key)."""
    if not key:
        return None
    row = db.execute("SELECT response, ranking FROM calls WHERE key=? AND status='ok' AND "
                     "cached=0 ORDER BY id DESC LIMIT 1", [key]).fetchone()
    if row is None:
        return None
    try:
        ranking = json.loads(row[1]) if row[1] else []
    except ValueError:
        ranking = []
    return {"response": row[0] or "", "ranking": ranking}


def completion_tokens(db, model: str, purpose: str, effort: str | None,
                      limit: int = 200) -> list[int]:
    """The completion tokens of ``model``'s latest ``limit`` successful ``purpose`` calls
    (not cache hits) sent at reasoning ``effort`` (``None``: none sent), newest first."""
    return [r[0] for r in db.execute(
        "SELECT completion_tokens FROM calls WHERE model=? AND purpose=? AND cached=0 AND "
        "status='ok' AND completion_tokens > 0 AND "
        "json_extract(request, '$.decoding.reasoning_effort') IS ? "
        "ORDER BY id DESC LIMIT ?", [model, purpose, effort, int(limit)])]


def rank_latencies(db, model: str, lo: int, hi: int, limit: int = 400) -> list[tuple]:
    """``(latency_s, cached_tokens, prompt_tokens)`` of ``model``'s latest ``limit``
    successful ranking calls (not cache hits) with a prompt of ``lo``..``hi`` tokens."""
    return db.execute(
        "SELECT latency_s, cached_tokens, prompt_tokens FROM calls WHERE model=? AND "
        "purpose='rank' AND cached=0 AND status='ok' AND prompt_tokens BETWEEN ? AND ? "
        "ORDER BY id DESC LIMIT ?", [model, lo, hi, int(limit)]).fetchall()
