"""The response cache and call log: the ``calls`` table of the workspace.

* Key = sha256 of (model, messages, decoding parameters incl. temperature and seed) and, for
  a ranking on the local model, the candidates, ``k`` and the ranking method's version
  (:func:`cache_key`).
* Every finished call is committed at once (a killed run keeps it); a hit is served without
  a request and logged as a row with ``cached=1`` pointing at the original (``cache_of``).
  Failed calls are logged with ``status='failed'`` and are never served as hits.
* ``response`` holds the answer only; a reasoning model's thinking is in ``reasoning`` and
  its count in ``reasoning_tokens`` (a hit returns both).
* SQLite connections are per thread: :class:`CallLog` opens one workspace connection for
  each thread that uses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

from re2llm_tui.llm.models import safe_base
from re2llm_tui.llm.results import LLMResult, RankResult

#: bump when the cache key layout changes
CACHE_KEY_VERSION = "calls-v1"

_HIT_COLUMNS = ("id", "response", "ranking", "hallucinations", "prompt_tokens",
                "completion_tokens", "cost", "latency_s", "api_base", "reasoning",
                "reasoning_tokens")


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def cache_key(model: str, messages: Sequence[dict], decoding: dict,
              extra: dict | None = None) -> str:
    """sha256 of everything that determines a reply."""
    payload = {"v": CACHE_KEY_VERSION, "model": model, "messages": list(messages),
               "decoding": decoding}
    if extra:
        payload["extra"] = extra
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


class CallLog:
    """The ``calls`` table of the workspace at ``db_path``: lookups, records, run totals."""

    def __init__(self, db_path=None) -> None:
        self.db_path = db_path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._dbs: list = []

    def db(self):
        """This thread's connection to the workspace (sqlite-utils Database)."""
        db = getattr(self._local, "db", None)
        if db is None:
            from re2llm_tui.store.workspace import open_workspace

            db = open_workspace(self.db_path)
            # WAL + NORMAL: a commit survives a killed process (not a power cut), and
            # committing once per call stays cheap
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
            with self._lock:
                self._dbs.append(db)
        return db

    def lookup(self, key: str) -> dict | None:
        """The first successful, non-hit row for ``key`` (columns of ``_HIT_COLUMNS``)."""
        row = self.db().execute(
            f"SELECT {', '.join(_HIT_COLUMNS)} FROM calls WHERE key=? AND status='ok' AND cached=0 "
            "ORDER BY id LIMIT 1", [key]).fetchone()
        return None if row is None else dict(zip(_HIT_COLUMNS, row))

    def record(self, *, key: str, model: str, purpose: str, run_id, request: dict,
               res: LLMResult, cached_from: int | None = None, ranking=None,
               hallucinations=None, claim=None) -> int:
        """Insert (and commit) one call; returns its row id.  A hit (``cached_from``) stores
        no request, reply nor usage: they stay in the original row.  ``claim``
        (:class:`~re2llm_tui.llm.inflight.Claim`): the request's claim on ``key``, deleted
        in the same transaction when this request holds it, so that another process waiting
        on it sees the reply and the end of the claim at once."""
        status = "ok" if res.error is None else "failed"
        hit = cached_from is not None
        release = claim is not None and claim.owned
        db = self.db()
        try:
            if release:
                db.conn.execute("BEGIN IMMEDIATE")
            cur = db.execute(
                "INSERT INTO calls (key, model, purpose, run_id, request, response, ranking, "
                "hallucinations, status, error, cached, cache_of, prompt_tokens, "
                "completion_tokens, cost, latency_s, attempts, api_base, cached_tokens, "
                "usage_estimated, reasoning, reasoning_tokens) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [key, model, purpose, run_id,
                 None if hit else canonical_json(request),
                 None if hit else res.text,
                 None if ranking is None or hit else json.dumps(ranking),
                 None if hallucinations is None or hit
                 else json.dumps(hallucinations, ensure_ascii=False),
                 status, res.error, 1 if hit else 0, cached_from,
                 0 if hit else res.prompt_tokens,
                 0 if hit else res.completion_tokens,
                 0.0 if hit else res.cost,
                 0.0 if hit else res.latency_s, res.attempts,
                 safe_base(res.api_base), 0 if hit else res.cached_tokens,
                 0 if hit else int(bool(res.usage_estimated)),
                 None if hit or not res.reasoning else res.reasoning,
                 0 if hit else int(res.reasoning_tokens or 0)])
            if release:
                db.execute("DELETE FROM inflight WHERE key=? AND pid=?", [key, os.getpid()])
                db.conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            from re2llm_tui.store.workspace import write_error

            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise write_error(exc) from None
        except BaseException:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise
        if release:
            claim.stored()
        return cur.lastrowid

    def run_totals(self, run_id: int) -> dict:
        """Calls, cache hits, failures, tokens and cost logged for one run."""
        row = self.db().execute(
            "SELECT COUNT(*), COALESCE(SUM(cached),0), "
            "COALESCE(SUM(status='failed'),0), COALESCE(SUM(cost),0), "
            "COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(completion_tokens),0), "
            "COALESCE(SUM(latency_s),0), COALESCE(SUM(reasoning_tokens),0) "
            "FROM calls WHERE run_id=?", [run_id]).fetchone()
        return {"calls": row[0] - row[1], "cache_hits": row[1], "failed": row[2],
                "cost": row[3], "prompt_tokens": row[4], "completion_tokens": row[5],
                "latency_s": row[6], "reasoning_tokens": row[7]}

    def close(self) -> None:
        """Close every thread's connection; a later call opens new ones."""
        with self._lock:
            dbs, self._dbs = self._dbs, []
        for db in dbs:
            try:
                db.conn.close()
            except Exception:  # noqa: BLE001 - another thread's connection
                pass
        self._local = threading.local()


def result_from_hit(hit: dict, cls: type[LLMResult], model: str) -> LLMResult:
    """A cached reply as a result of ``cls`` (free: no cost, no latency, no attempts)."""
    res = cls(text=hit["response"] or "", cached=True, cost=0.0,
              prompt_tokens=hit["prompt_tokens"] or 0,
              completion_tokens=hit["completion_tokens"] or 0,
              latency_s=0.0, model=model, api_base=hit["api_base"], attempts=0,
              reasoning=hit.get("reasoning") or "",
              reasoning_tokens=hit.get("reasoning_tokens") or 0)
    if cls is RankResult:
        res.ranking = json.loads(hit["ranking"]) if hit["ranking"] else []
        res.hallucinations = json.loads(hit["hallucinations"]) if hit["hallucinations"] else []
    res.call_id = hit["id"]
    return res
