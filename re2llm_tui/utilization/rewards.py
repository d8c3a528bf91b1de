"""The retrieval agent's reward: ``r(s, h) = NDCG@10(LLM | s, h) - NDCG@10(LLM | s, no hint)``,
and every source the agent's trainer reads rewards from.

A :class:`RewardSource` answers ``rewards(sessions, actions)`` for a batch of pairs:
:class:`RewardTable` (a fully known table), :class:`RewardFunction` (a memoised function,
for tests), :class:`LLMRewards` (the LLM-backed outcomes below) and :class:`PrefilledTable`
(the complete table of an :class:`LLMRewards` after its prefill, :meth:`LLMRewards.as_table`).

Both rankings come from the same LLM, prompt versions and decoding, through
:meth:`LLMClient.rank` (so every call is also in the client's cache).  Each (session, hint)
*outcome* -- the target's rank and NDCG@10 -- is stored in the workspace's
``reward_outcomes`` table, keyed by dataset, model, context (prompt versions, ranking
method, decoding, rank accounting) and the hint's text, so a pair is paid for once however
many PPO steps visit it, in this process or a later one.  The "no hint" action's reward is 0
by definition.  The target's rank is counted by :func:`~re2llm_tui.llm.parsing.target_rank`
under ``rank_by`` (reply positions by default), exactly as ``score``, ``recommend`` and
``evaluate`` count it, so reward and metrics never disagree; the context names it
(``|rank-by=...``), so outcomes counted the other way are never mixed in.

:class:`LLMRewards` computes the missing outcomes of a batch concurrently (the client
bounds concurrency and enforces ``--max-cost`` / ``--max-calls``;
:class:`~re2llm_tui.llm.client.BudgetExceeded` propagates after the outcomes that did
finish are stored).  :meth:`LLMRewards.prefill` computes the whole table up
front.  A failed call (after the client's retries) is not stored: its step gets reward 0
(the neutral value) and ``stats()["failed"]`` counts it; the pair is retried on its next visit.

``samples`` (``--samples N``, for a model whose replies are samples): each outcome asks its
request N times (sample ``j`` > 0 under its own cache key,
:func:`~re2llm_tui.llm.decoding.sample_decoding`), and stores the mean NDCG@10 of the N
samples, with every sample's rank, ranking and call in ``reward_outcomes.samples``
(``target_rank`` / ``ranking`` / ``call_id`` are sample 0's).  The context then names the
samples (``|samples=N``), so outcomes of one sample (the context without it, as before)
and of other N are never mixed; an outcome is stored only when all its samples worked.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np

from re2llm_tui.data.release import Session
from re2llm_tui.errors import UserError
from re2llm_tui.kb.hint_stats import hint_key  # noqa: F401 - the reward table's key
from re2llm_tui.llm.parsing import (
    DEFAULT_RANK_BY,
    check_rank_by,
    reply_ranking,
    target_rank,
)
from re2llm_tui.rank_metrics import Counts, ndcg_at
from re2llm_tui.store import outcomes as outcomes_table
from re2llm_tui.store.calls import response_of

K = 10


# --------------------------------------------------------------------------- reward sources

class RewardSource(Protocol):
    """Where rewards come from: ``rewards(sessions, actions)`` for a batch of pairs."""

    n_sessions: int
    n_actions: int

    def rewards(self, sessions: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """float rewards for the pairs ``(sessions[i], actions[i])``."""

    def stats(self) -> dict[str, int]:
        """``{"llm_calls": ..., "cache_hits": ...}`` so far."""


class RewardTable:
    """A fully known reward table ``[n_sessions, n_actions]``: lookups only."""

    def __init__(self, table) -> None:
        arr = np.ascontiguousarray(np.asarray(table, dtype=np.float32))
        if arr.ndim != 2 or not arr.size:
            raise UserError(f"reward table must be a non-empty 2-D array (got shape {arr.shape})")
        if not np.isfinite(arr).all():
            raise UserError("reward table has missing or non-finite entries")
        self.table = arr
        self.n_sessions, self.n_actions = arr.shape

    def rewards(self, sessions: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return self.table[sessions, actions]

    def stats(self) -> dict[str, int]:
        return {"llm_calls": 0, "cache_hits": 0}


class RewardFunction:
    """``reward(session_index, action) -> float``, called at most once per pair (memoised).

    ``stats()`` counts calls of ``reward`` as ``llm_calls`` and memo hits as ``cache_hits``.
    """

    def __init__(self, reward: Callable[[int, int], float], n_sessions: int, n_actions: int) -> None:
        self.reward = reward
        self.n_sessions, self.n_actions = int(n_sessions), int(n_actions)
        self.table = np.full((self.n_sessions, self.n_actions), np.nan, dtype=np.float32)
        self.calls = 0
        self.hits = 0

    def rewards(self, sessions: np.ndarray, actions: np.ndarray) -> np.ndarray:
        vals = self.table[sessions, actions]
        missing = np.isnan(vals)
        for i in np.flatnonzero(missing):
            s, a = int(sessions[i]), int(actions[i])
            if np.isnan(self.table[s, a]):      # a pair repeated within the batch: once
                self.table[s, a] = float(self.reward(s, a))
                self.calls += 1
            else:
                self.hits += 1
            vals[i] = self.table[s, a]
        self.hits += int((~missing).sum())
        return vals

    def stats(self) -> dict[str, int]:
        return {"llm_calls": self.calls, "cache_hits": self.hits}


class PrefilledTable:
    """A complete reward table (vectorised lookups) that reports the prefill's LLM stats.

    ``llm_source`` (what filled the table) answers ``stats()``; every lookup here counts as
    a cache hit on top of its own.
    """

    def __init__(self, table, llm_source) -> None:
        self._table = RewardTable(table)
        self.n_sessions, self.n_actions = self._table.n_sessions, self._table.n_actions
        self._llm = llm_source
        self._lookups = 0

    def rewards(self, sessions, actions):
        self._lookups += len(sessions)
        return self._table.rewards(sessions, actions)

    def stats(self) -> dict:
        st = dict(self._llm.stats())
        st["cache_hits"] = st.get("cache_hits", 0) + self._lookups
        return st


# --------------------------------------------------------------------------- LLM rewards


def reward_context(client, rank_by: str = DEFAULT_RANK_BY, samples: int = 1) -> str:
    """What besides model, session and hint text determines an outcome (the rank accounting
    included: outcomes stored before it was named here were counted by candidates, under a
    context without ``rank-by``, and are never read; ``|samples=N`` only when N > 1, so
    outcomes of one sample keep their context)."""
    from re2llm_tui.prompts import HINT_VERSION, RECOMMEND_VERSION

    context = (f"{RECOMMEND_VERSION}+{HINT_VERSION}|rank={client.rank_method}|k={K}"
               f"|t={client.temperature}|seed={client.seed}|rank-by={check_rank_by(rank_by)}")
    record = client.decoding_record() if hasattr(client, "decoding_record") else {}
    if record:
        # a model that does not decode greedily as before: its outcomes stand apart
        context += (f"|sampled={int(bool(record['sampled']))}"
                    f"|effort={record['reasoning_effort'] or '-'}"
                    f"|limit={record['limit_param']}:{record['output_limit']}")
    if samples > 1:
        context += f"|samples={int(samples)}"
    return context


@dataclass
class PrefillProgress:
    """Where the reward table stands (phase 1 of a training run, and evaluations)."""

    done: int          # outcomes known (stored before or computed now)
    total: int         # outcomes wanted
    calls: int         # requests sent so far
    cache_hits: int
    failed: int
    cost: float
    computed: int = 0          # outcomes computed in this fill
    elapsed_s: float = 0.0
    per_min: float = 0.0       # outcomes per minute in this fill
    rows_done: int = 0         # sessions whose wanted outcomes are all known
    rows_total: int = 0
    eta_s: float | None = None
    hint_means: list = field(default_factory=list)   # mean reward per action so far (None: no data)
    hint_counts: list = field(default_factory=list)  # sessions behind each mean

    def as_dict(self) -> dict:
        return asdict(self)


def session_major(pairs) -> list[tuple[int, int]]:
    """``(session, action)`` pairs ordered a session at a time, its actions back to back,
    no-hint first: consecutive prompts then share all but their last tokens, which the
    local engine (and remote prompt caches) reuse."""
    return sorted({(int(i), int(a)) for i, a in pairs})


class LLMRewards:
    """Rewards of ``actions`` (``[(hint_id, text), ...]``, no hint first) on ``sessions``.

    ``client`` is an :class:`~re2llm_tui.llm.client.LLMClient` (checked before its first
    call); ``db`` a workspace connection of this thread (default: the client's); ``rank_by``
    the rank accounting (:func:`~re2llm_tui.llm.parsing.target_rank`).
    """

    def __init__(self, client, sessions: Sequence[Session], actions: Sequence[tuple[int, str]], *,
                 dataset: str, db=None, rank_by: str = DEFAULT_RANK_BY,
                 context_tag: str = "", samples: int = 1) -> None:
        from re2llm_tui.llm.decoding import check_samples

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
        self.rank_by = check_rank_by(rank_by)
        self.samples = check_samples(samples)
        # ``context_tag`` keeps variants apart (e.g. a candidate-order shuffle's outcomes)
        self.context_tag = context_tag
        self.context = reward_context(client, self.rank_by, self.samples) + (
            f"|{context_tag}" if context_tag else "")
        self.keys = [hint_key(t) for _, t in self.actions]
        self.n_sessions, self.n_actions = len(self.sessions), len(self.actions)
        # outcomes: NDCG@10 and target rank per (session, action); NaN / -1 = unknown
        self.ndcg = np.full((self.n_sessions, self.n_actions), np.nan, dtype=np.float64)
        self.rank = np.full((self.n_sessions, self.n_actions), -1, dtype=np.int64)  # 0 = absent
        self._rankings: dict[tuple[int, int], list[int]] = {}
        # samples > 1: every sample's {"target_rank", "ranking", "call_id"} per outcome
        self._samples: dict[tuple[int, int], list[dict]] = {}
        self._replies: dict[tuple[int, str], Counts] = {}   # (session, hint key) -> counts
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
        for sid, key, trank, ndcg, ranking, samples in outcomes_table.load(
                self.db, self.dataset, self.model, self.context, list(cols_of)):
            i = row_of.get(sid)
            if i is None:
                continue
            for a in cols_of[key]:
                self.ndcg[i, a] = ndcg
                self.rank[i, a] = trank or 0
                if ranking:
                    self._rankings[(i, a)] = json.loads(ranking)
                if samples:
                    self._samples[(i, a)] = json.loads(samples)

    def known(self) -> int:
        """How many (session, action) outcomes are stored."""
        return int(np.isfinite(self.ndcg).sum())

    def missing_pairs(self, wanted: np.ndarray | None = None) -> list[tuple[int, int]]:
        """Outcomes still to compute (session index, action index), session-major
        (:func:`session_major`); ``wanted`` (a boolean table) restricts them."""
        miss = ~np.isfinite(self.ndcg)
        if wanted is not None:
            miss &= np.asarray(wanted, dtype=bool)
        return [(int(i), int(a)) for i, a in zip(*np.nonzero(miss))]

    def hint_means(self) -> tuple[list, list]:
        """Mean reward of each action over the sessions where it and "no hint" are known."""
        base = self.ndcg[:, :1]
        both = np.isfinite(self.ndcg) & np.isfinite(base)
        diff = np.where(both, self.ndcg - base, 0.0)
        counts = both.sum(axis=0)
        means = [None if c == 0 else float(diff[:, a].sum() / c) for a, c in enumerate(counts)]
        return means, [int(c) for c in counts]

    def progress(self, wanted: np.ndarray | None = None, *, computed: int = 0,
                 elapsed_s: float = 0.0) -> PrefillProgress:
        """A :class:`PrefillProgress` of the ``wanted`` outcomes (default: all)."""
        known = np.isfinite(self.ndcg)
        want = np.ones_like(known) if wanted is None else np.asarray(wanted, dtype=bool)
        done = int((known & want).sum())
        total = int(want.sum())
        rows = want.any(axis=1)
        rows_done = int((rows & ~(want & ~known).any(axis=1)).sum())
        per_min = computed / elapsed_s * 60.0 if elapsed_s > 0 and computed else 0.0
        eta = (total - done) / per_min * 60.0 if per_min > 0 else None
        means, counts = self.hint_means()
        return PrefillProgress(done, total, self.calls, self.hits, self.failed, self.cost,
                               computed=computed, elapsed_s=elapsed_s, per_min=per_min,
                               rows_done=rows_done, rows_total=int(rows.sum()),
                               eta_s=eta if done < total else 0.0, hint_means=means,
                               hint_counts=counts)

    def table(self) -> np.ndarray:
        """The reward table ``[n_sessions, n_actions]`` (NaN where unknown)."""
        out = self.ndcg - self.ndcg[:, :1]
        out[:, 0] = np.where(np.isfinite(self.ndcg[:, 0]), 0.0, np.nan)
        return out.astype(np.float32)

    def as_table(self) -> PrefilledTable:
        """The complete table (after a prefill) as a fast source that still reports this
        one's LLM stats; a :class:`UserError` while outcomes are missing."""
        return PrefilledTable(self.table(), self)

    def target_rank(self, i: int, a: int) -> int | None:
        """1-based rank of the target (None: absent) for a known outcome."""
        r = int(self.rank[i, a])
        if r < 0:
            raise KeyError((i, a))
        return r or None

    def ranking(self, i: int, a: int) -> list[int]:
        return list(self._rankings.get((i, a), []))

    def sample_ranks(self, i: int, a: int) -> list[int | None]:
        """Every sample's target rank (None: absent) of a known outcome; ``[rank]`` for
        one sample."""
        per = self._samples.get((i, a))
        if per is None:
            return [self.target_rank(i, a)]
        return [p.get("target_rank") for p in per]

    def outcome(self, i: int, a: int):
        """A known outcome as :func:`~re2llm_tui.evaluation.metrics.summarize` reads it: the
        target rank, or with ``samples`` > 1 the list of the samples' ranks."""
        return self.sample_ranks(i, a) if self.samples > 1 else self.target_rank(i, a)

    def reply_counts(self, i: int, a: int) -> Counts | None:
        """The reply's counts behind a known outcome (listed, valid, distinct items: what
        :func:`~re2llm_tui.evaluation.metrics.summarize` reads); None when the outcome is
        unknown or its reply is no longer in the workspace."""
        if not np.isfinite(self.ndcg[i, a]):
            return None
        key = (i, self.keys[a])
        if self.samples > 1 and (i, a) in self._samples:
            return self._sample_counts(i, a)[0]
        if key not in self._replies:
            method = self.client.rank_method
            text = ""                   # the local engine's reply is its ranking
            if method == "generate":
                text = outcomes_table.reply_of(self.db, self.dataset, self.model, self.context,
                                               self.sessions[i].id, self.keys[a])
                if text is None:
                    return None
            self._replies[key] = Counts.of(reply_ranking(
                text, self.ranking(i, a), self.sessions[i].candidates, rank_method=method, k=K))
        return self._replies[key]

    def _sample_counts(self, i: int, a: int) -> list[Counts | None]:
        """Every sample's reply counts of a known outcome (``samples`` > 1), read from its
        call (None where the reply is no longer in the workspace)."""
        out = []
        method = self.client.rank_method
        for j, p in enumerate(self._samples[(i, a)]):
            key = (i, self.keys[a], j)
            if key not in self._replies:
                text = ""
                if method == "generate":
                    text = response_of(self.db, p.get("call_id"))
                    if text is None:
                        out.append(None)
                        continue
                self._replies[key] = Counts.of(reply_ranking(
                    text, p.get("ranking") or [], self.sessions[i].candidates,
                    rank_method=method, k=K))
            out.append(self._replies[key])
        return out

    def replies_of(self, actions) -> list[Counts | None]:
        """:meth:`reply_counts` of session ``i`` under ``actions[i]``, for every session
        (``samples`` > 1: every sample's reply)."""
        if self.samples > 1:
            return [c for i, a in enumerate(actions) for c in
                    (self._sample_counts(i, int(a)) if (i, int(a)) in self._samples
                     else [self.reply_counts(i, int(a))])]
        return [self.reply_counts(i, int(a)) for i, a in enumerate(actions)]

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
            self.compute(session_major(need))
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
    def prefill(self, progress: Callable[[PrefillProgress], None] | None = None, *,
                wanted: np.ndarray | None = None, workers: int = 1,
                report_every: float = 0.25) -> PrefillProgress:
        """Compute every missing (``wanted``) outcome, a session at a time.

        ``workers`` > 1 shards the sessions over that many worker processes, each with its
        own model instance (:mod:`re2llm_tui.utilization.reward_workers`).  ``progress`` gets a
        :class:`PrefillProgress` at the start, at most every ``report_every`` seconds while
        outcomes arrive, and at the end.  Raises :class:`~re2llm_tui.control.RunStop`
        (a budget or stop request) after storing what finished.
        """
        todo = self.missing_pairs(wanted)
        t0 = time.monotonic()
        computed = 0
        last = 0.0

        def report(force: bool = False) -> PrefillProgress:
            nonlocal last
            now = time.monotonic()
            p = self.progress(wanted, computed=computed, elapsed_s=now - t0)
            if progress is not None and (force or now - last >= report_every):
                last = now
                progress(p)
            return p

        def on_outcome(i: int, a: int) -> None:
            nonlocal computed
            computed += 1
            report()

        report(force=True)
        try:
            if workers > 1 and len({i for i, _ in todo}) > 1:
                from re2llm_tui.utilization.reward_workers import fill_with_workers

                fill_with_workers(self, todo, workers, compute_shard, on_outcome)
            else:
                self.compute(todo, on_outcome=on_outcome)
        finally:
            final = report(force=True)
        return final

    def compute(self, pairs: list[tuple[int, int]], on_done: Callable | None = None,
                on_outcome: Callable[[int, int], None] | None = None) -> None:
        """Compute the outcomes of ``pairs`` (session index, action index), session-major.

        Each finished outcome is committed at once; ``on_outcome(i, a)`` follows it.
        """
        if not pairs:
            return
        if not self._checked:
            self.client.check()
            self._checked = True
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._gather(session_major(pairs), on_outcome))
        if on_done is not None:
            on_done()

    async def _gather(self, pairs, on_outcome) -> None:
        from re2llm_tui.control import RunStop
        from re2llm_tui.prompts import recommend_prompt

        from re2llm_tui.llm.decoding import sample_decoding

        async def one(i: int, a: int):
            s = self.sessions[i]
            prompt = recommend_prompt(s.prompt, self.actions[a][1] or None)
            if self.samples == 1:
                return i, a, await self.client.rank(prompt, s.candidates, k=K)
            got = await asyncio.gather(*(self.client.rank(prompt, s.candidates, k=K,
                                                          **sample_decoding(j))
                                         for j in range(self.samples)),
                                       return_exceptions=True)
            for r in got:
                if isinstance(r, BaseException):
                    raise r
            return i, a, list(got)

        stop: BaseException | None = None
        # created in session-major order: the client's semaphore admits them in this order
        tasks = [asyncio.ensure_future(one(i, a)) for i, a in pairs]
        try:
            for fut in asyncio.as_completed(tasks):
                try:
                    i, a, res = await fut
                except RunStop as exc:
                    stop = stop or exc
                    continue
                self.record(i, a, res)
                if on_outcome is not None and np.isfinite(self.ndcg[i, a]):
                    on_outcome(i, a)
        finally:
            for t in tasks:
                t.cancel()
            # let cancelled tasks unwind inside this loop (no "Task was destroyed" noise)
            await asyncio.gather(*tasks, return_exceptions=True)
        if stop is not None:
            raise stop

    def record(self, i: int, a: int, res) -> None:
        """Count one ranking result (``samples`` > 1: the list of its samples' results);
        store its outcome (committed at once) when it is ok (every sample)."""
        results = res if isinstance(res, list) else [res]
        for r in results:
            if r.cached:
                self.hits += 1
            else:
                self.calls += 1
                self.cost += float(r.cost or 0.0)
            if not r.ok:
                self.failed += 1
        if not all(r.ok for r in results):
            return
        s = self.sessions[i]
        per = []
        for j, r in enumerate(results):
            parsed = reply_ranking(r.text, r.ranking, s.candidates,
                                   rank_method=self.client.rank_method, k=K)
            trank = target_rank(parsed, s.target_index, self.rank_by)
            ranking = [int(x) for x in parsed.ranking][:K]
            self._replies[(i, self.keys[a], j) if self.samples > 1
                          else (i, self.keys[a])] = Counts.of(parsed)
            per.append({"target_rank": trank, "ranking": ranking, "call_id": r.call_id})
        ndcg = sum(ndcg_at(p["target_rank"], K) for p in per) / len(per)
        self._store(i, a, per[0]["target_rank"], ndcg, per[0]["ranking"], per[0]["call_id"],
                    per if self.samples > 1 else None)

    def apply(self, i: int, a: int, trank: int | None, ndcg: float, ranking: list[int],
              samples: list[dict] | None = None) -> None:
        """Put a known outcome into the in-memory table (every action with the same text)."""
        for col, key in enumerate(self.keys):
            if key == self.keys[a]:
                self.ndcg[i, col] = ndcg
                self.rank[i, col] = trank or 0
                self._rankings[(i, col)] = list(ranking)
                if samples is not None:
                    self._samples[(i, col)] = list(samples)

    def _store(self, i: int, a: int, trank, ndcg: float, ranking: list[int], call_id,
               samples: list[dict] | None = None) -> None:
        outcomes_table.put(self.db, dataset=self.dataset, model=self.model,
                           context=self.context, session_id=self.sessions[i].id,
                           hint_key=self.keys[a], hint_id=self.actions[a][0], target_rank=trank,
                           ndcg=ndcg, ranking=ranking, call_id=call_id, samples=samples)
        self.apply(i, a, trank, ndcg, ranking, samples)

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


def compute_shard(spec, options: dict, budget, send) -> None:
    """A reward worker's sessions (a :class:`~re2llm_tui.utilization.reward_workers.WorkerSpec`)
    in a pool process: every outcome committed, then sent to the parent."""
    from re2llm_tui.llm.client import LLMClient

    client = LLMClient(**options, shared_budget=budget)
    src = LLMRewards(client, spec.sessions, spec.actions, dataset=spec.dataset,
                     rank_by=spec.rank_by, context_tag=spec.context_tag,
                     samples=spec.samples)
    record = src.record

    def record_and_send(i: int, a: int, res) -> None:
        record(i, a, res)
        results = res if isinstance(res, list) else [res]
        ok = all(r.ok for r in results)
        # ("res", index, action, ok, hits, sent, failed, cost[, rank, ndcg, ranking, samples])
        msg = ["res", spec.index[i], a, ok, sum(1 for r in results if r.cached),
               sum(1 for r in results if not r.cached),
               sum(1 for r in results if not r.ok),
               sum(float(r.cost or 0.0) for r in results if not r.cached)]
        if ok:
            msg += [src.target_rank(i, a), float(src.ndcg[i, a]), src.ranking(i, a),
                    src._samples.get((i, a))]
        send(tuple(msg))

    src.record = record_and_send
    try:
        src.compute(spec.pairs)
    finally:
        src.close()
        client.close()
