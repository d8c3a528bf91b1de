"""The retrieval agent's reward: ``r(s, h) = NDCG@10(LLM | s, h) - NDCG@10(LLM | s, no hint)``.

Both rankings come from the same LLM, prompt versions and decoding, through
:meth:`LLMClient.rank` (so every call is also in the client's cache).  Each (session, hint)
*outcome* -- the target's rank and NDCG@10 -- is stored in the workspace's
``reward_outcomes`` table, keyed by dataset, model, context (prompt versions, ranking
method, decoding) and the hint's text, so a pair is paid for once however many PPO steps
visit it, in this process or a later one.  The "no hint" action's reward is 0 by definition.

:class:`LLMRewards` is a :class:`~re2llm_tui.agent.RewardSource`: missing outcomes of a batch
are computed concurrently (the client bounds concurrency and enforces ``--max-cost`` /
``--max-calls``; :class:`~re2llm_tui.llm.client.BudgetExceeded` propagates after the
outcomes that did finish are stored).  :meth:`LLMRewards.prefill` computes the whole table up
front.  A failed call (after the client's retries) is not stored: its step gets reward 0
(the neutral value) and ``stats()["failed"]`` counts it; the pair is retried on its next visit.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .datasets import Session
from .errors import UserError
from .metrics import ndcg_at, rank_of

K = 10


def hint_key(text: str | None) -> str:
    """Stable key of a hint text ('' for no hint)."""
    text = (text or "").strip()
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16] if text else ""


def reward_context(client) -> str:
    """What besides model, session and hint text determines an outcome."""
    from .prompts import HINT_VERSION, RECOMMEND_VERSION

    return (f"{RECOMMEND_VERSION}+{HINT_VERSION}|rank={client.rank_method}|k={K}"
            f"|t={client.temperature}|seed={client.seed}")


@dataclass
class PrefillProgress:
    done: int          # outcomes known (stored before or computed now)
    total: int         # outcomes in the table
    calls: int         # requests sent so far in this prefill
    cache_hits: int
    failed: int
    cost: float


class LLMRewards:
    """Rewards of ``actions`` (``[(hint_id, text), ...]``, no hint first) on ``sessions``.

    ``client`` is an :class:`~re2llm_tui.llm.client.LLMClient` (checked before its first
    call); ``db`` a workspace connection of this thread (default: the client's).
    """

    def __init__(self, client, sessions: Sequence[Session], actions: Sequence[tuple[int, str]], *,
                 dataset: str, db=None) -> None:
        if not sessions:
            raise UserError("no sessions to compute rewards for")
        if not actions or (actions[0][1] or "").strip():
            raise UserError("the action list must start with the empty 'no hint' action")
        self.client = client
        self.db = db if db is not None else client.workspace()
        self.sessions = list(sessions)
        self.actions = [(int(h), (t or "").strip()) for h, t in actions]
        self.dataset = dataset
        self.model = client.model
        self.context = reward_context(client)
        self.keys = [hint_key(t) for _, t in self.actions]
        self.n_sessions, self.n_actions = len(self.sessions), len(self.actions)
        # outcomes: NDCG@10 and target rank per (session, action); NaN / -1 = unknown
        self.ndcg = np.full((self.n_sessions, self.n_actions), np.nan, dtype=np.float64)
        self.rank = np.full((self.n_sessions, self.n_actions), -1, dtype=np.int64)  # 0 = absent
        self._rankings: dict[tuple[int, int], list[int]] = {}
        self.calls = self.hits = self.failed = 0
        self.cost = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._checked = False
        self._load()

    # ----------------------------------------------------------------- the stored table
    def _load(self) -> None:
        """Read every stored outcome of these sessions x hint texts."""
        row_of = {s.id: i for i, s in enumerate(self.sessions)}
        cols_of: dict[str, list[int]] = {}
        for a, key in enumerate(self.keys):
            cols_of.setdefault(key, []).append(a)
        keys = list(cols_of)
        marks = ", ".join("?" for _ in keys)
        for sid, key, trank, ndcg, ranking in self.db.execute(
                "SELECT session_id, hint_key, target_rank, ndcg, ranking FROM reward_outcomes "
                f"WHERE dataset=? AND model=? AND context=? AND hint_key IN ({marks})",
                [self.dataset, self.model, self.context, *keys]):
            i = row_of.get(sid)
            if i is None:
                continue
            for a in cols_of[key]:
                self.ndcg[i, a] = ndcg
                self.rank[i, a] = trank or 0
                if ranking:
                    self._rankings[(i, a)] = json.loads(ranking)

    def known(self) -> int:
        """How many (session, action) outcomes are stored."""
        return int(np.isfinite(self.ndcg).sum())

    def missing_pairs(self) -> list[tuple[int, int]]:
        """Outcomes still to compute (session index, action index), no-hint column first."""
        miss = ~np.isfinite(self.ndcg)
        return [(int(i), int(a)) for a in range(self.n_actions) for i in np.flatnonzero(miss[:, a])]

    def table(self) -> np.ndarray:
        """The reward table ``[n_sessions, n_actions]`` (NaN where unknown)."""
        out = self.ndcg - self.ndcg[:, :1]
        out[:, 0] = np.where(np.isfinite(self.ndcg[:, 0]), 0.0, np.nan)
        return out.astype(np.float32)

    def target_rank(self, i: int, a: int) -> int | None:
        """1-based rank of the target (None: absent) for a known outcome."""
        r = int(self.rank[i, a])
        if r < 0:
            raise KeyError((i, a))
        return r or None

    def ranking(self, i: int, a: int) -> list[int]:
        return list(self._rankings.get((i, a), []))

    # ----------------------------------------------------------------- RewardSource
    def rewards(self, sessions: np.ndarray, actions: np.ndarray) -> np.ndarray:
        sessions = np.asarray(sessions, dtype=np.int64)
        actions = np.asarray(actions, dtype=np.int64)
        base = self.ndcg[sessions, 0]
        with_hint = self.ndcg[sessions, actions]
        known = (actions == 0) | (np.isfinite(base) & np.isfinite(with_hint))
        if not known.all():
            need: set[tuple[int, int]] = set()
            for i, a in zip(sessions[~known].tolist(), actions[~known].tolist()):
                for col in (0, a):
                    if not np.isfinite(self.ndcg[i, col]):
                        need.add((i, col))
            self.compute(sorted(need, key=lambda p: (p[1], p[0])))
            base = self.ndcg[sessions, 0]
            with_hint = self.ndcg[sessions, actions]
        self.hits += int(known.sum())
        out = with_hint - base
        # "no hint" is 0 by definition; a pair whose call failed is neutral (0)
        out[(actions == 0) | ~np.isfinite(out)] = 0.0
        return out.astype(np.float32)

    def stats(self) -> dict:
        return {"llm_calls": self.calls, "cache_hits": self.hits, "failed": self.failed,
                "cost": self.cost}

    # ----------------------------------------------------------------- computing outcomes
    def prefill(self, progress: Callable[[PrefillProgress], None] | None = None,
                chunk: int = 64) -> PrefillProgress:
        """Compute every missing outcome (chunks of ``chunk`` concurrent calls).

        Raises :class:`BudgetExceeded` (after storing what finished) when the budget runs out.
        """
        todo = self.missing_pairs()
        total = self.n_sessions * self.n_actions

        def report() -> PrefillProgress:
            p = PrefillProgress(self.known(), total, self.calls, self.hits, self.failed, self.cost)
            if progress is not None:
                progress(p)
            return p

        report()
        for start in range(0, len(todo), chunk):
            self.compute(todo[start:start + chunk], on_done=report)
        return report()

    def compute(self, pairs: list[tuple[int, int]], on_done: Callable | None = None) -> None:
        """Compute the outcomes of ``pairs`` (session index, action index) concurrently."""
        if not pairs:
            return
        if not self._checked:
            self.client.check()
            self._checked = True
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._gather(pairs, on_done))

    async def _gather(self, pairs, on_done) -> None:
        from .llm.client import BudgetExceeded
        from .prompts import recommend_prompt

        pending: list[tuple[int, int, object]] = []
        last_flush = time.monotonic()

        def flush() -> None:
            nonlocal last_flush
            if pending:
                self._store(pending)
                pending.clear()
            last_flush = time.monotonic()

        async def one(i: int, a: int):
            s = self.sessions[i]
            prompt = recommend_prompt(s.prompt, self.actions[a][1] or None)
            res = await self.client.rank(prompt, s.candidates, k=K)
            return i, a, res

        budget: BaseException | None = None
        tasks = [asyncio.ensure_future(one(i, a)) for i, a in pairs]
        try:
            for fut in asyncio.as_completed(tasks):
                try:
                    i, a, res = await fut
                except BudgetExceeded as exc:
                    budget = budget or exc
                    continue
                if res.cached:
                    self.hits += 1
                else:
                    self.calls += 1
                    self.cost += float(res.cost or 0.0)
                if not res.ok:
                    self.failed += 1
                    continue
                pending.append((i, a, res))
                if len(pending) >= 64 or time.monotonic() - last_flush > 1.0:
                    flush()
                    if on_done is not None:
                        on_done()
        finally:
            for t in tasks:
                t.cancel()
            flush()
        if on_done is not None:
            on_done()
        if budget is not None:
            raise budget

    def _store(self, results: list[tuple[int, int, object]]) -> None:
        from .workspace import transaction

        rows = []
        for i, a, res in results:
            s = self.sessions[i]
            ranking = [int(x) for x in res.ranking][:K]
            trank = rank_of(ranking, s.target_index)
            ndcg = ndcg_at(trank, K)
            for col, key in enumerate(self.keys):     # the same text may be two actions
                if key == self.keys[a]:
                    self.ndcg[i, col] = ndcg
                    self.rank[i, col] = trank or 0
                    self._rankings[(i, col)] = ranking
            rows.append((self.dataset, self.model, self.context, s.id, self.keys[a],
                         self.actions[a][0], trank, ndcg, json.dumps(ranking), res.call_id))
        with transaction(self.db):
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO reward_outcomes (dataset, model, context, session_id, "
                "hint_key, hint_id, target_rank, ndcg, ranking, call_id) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)", rows)

    def close(self) -> None:
        """Close the private event loop (cancelling what litellm left running on it)."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
