"""The one LLM client of the project: async, over litellm, cached in the workspace.

Every LLM call goes through :class:`LLMClient`.  Public API (stable; other modules use it)::

    client = LLMClient(db_path, model=None, api_bases=(), concurrency=None, timeout=60.0,
                       max_retries=4, max_cost=None, max_calls=None, temperature=0.0, seed=0,
                       transport=None,   # auto | litellm | fast ($RE2LLM_TRANSPORT)
                       reasoning_effort=None,   # none|minimal|low|medium|high ($RE2LLM_REASONING_EFFORT)
                       declared=None)    # {"reasoning": bool, "no_temperature": bool} declared
                                         # now, over (and remembered in) the workspace's
    client.check()                       # one-line UserError for a bad model/key/--api-base
    res  = await client.complete(messages, purpose="chat", run_id=None, **decoding)  # LLMResult
    rres = await client.rank(prompt, candidates, k=10, run_id=None)                  # RankResult
    client.complete_sync(...), client.rank_sync(...)    # the same from synchronous code
    client.run_sync(coro)                # any coroutine using the client, from sync code
    client.stats                         # Stats: calls, cache_hits, failed, cost, tokens, ...
    client.is_demo_model                 # True for the embedded 135M demo model
    client.profile                       # the model's Decoding (llm/capabilities.py)
    client.sampled                       # replies are samples, not greedy decodes
    client.decoding_record()             # what a run's params record about decoding
    client.close()

The client composes pieces with one job each:

* :mod:`~re2llm_tui.llm.models`: the model string (``--model``, ``$RE2LLM_MODEL``, the
  embedded demo model), ``--api-base`` servers, and the checks of :meth:`LLMClient.check`.
* :mod:`~re2llm_tui.llm.cache`: the ``calls`` table of the workspace.  Every finished call
  is committed at once; a hit is served without a request and logged with ``cached=1``;
  failed calls are logged and never cached.  Identical concurrent requests share one call
  (:mod:`~re2llm_tui.llm.concurrency`, which also bounds the calls in flight); a request
  another process on the workspace is sending is waited for, not sent again
  (:mod:`~re2llm_tui.llm.inflight`).
* :mod:`~re2llm_tui.llm.retry`: rate limits, timeouts, connection errors, 5xx and
  unparseable replies are retried ``max_retries`` times with exponential backoff and jitter
  (or the server's ``Retry-After``); then the call is returned with ``error`` set (and
  logged as failed): callers go on and count failures.  A refused key stops the run
  (:class:`AuthFailed`, :mod:`~re2llm_tui.llm.errors`).
* :mod:`~re2llm_tui.llm.budget`: ``max_calls`` (requests actually sent, cache hits free) and
  ``max_cost`` (USD, litellm's cost tables; 0 for local models): once reached, the next
  request raises :class:`BudgetExceeded` before it is sent; everything done so far is in
  the cache, so the same job rerun later resumes where it stopped.  In-flight calls may
  overshoot ``max_cost`` by at most ``concurrency`` calls.  A :class:`SharedBudget` counts
  across processes.
* :mod:`~re2llm_tui.llm.transport`: litellm's ``acompletion`` (several ``--api-base``:
  least busy first), the local provider's ranking, and (``transport="fast"``, the default
  ``auto`` for ``hosted_vllm/``/``openai/`` with ``--api-base``) a lean HTTP path to
  OpenAI-compatible servers with the same replies, usage, cost, errors and retries.
* :mod:`~re2llm_tui.llm.sync`: the private event-loop thread behind the ``*_sync`` methods.
* :mod:`~re2llm_tui.llm.capabilities` / :mod:`~re2llm_tui.llm.decoding`: what the model
  accepts, decided in :meth:`LLMClient.check` (its :class:`Decoding` profile): no
  temperature to a model that refuses it (its replies are *sampled*), the output limit under
  the model's parameter with room for reasoning, ``reasoning_effort`` where given.  A
  model that decodes greedily as before sends exactly what it always sent.
* :mod:`~re2llm_tui.llm.thinking`: a reply's thinking (``<think>`` blocks,
  ``reasoning_content``, thinking blocks) is kept apart from its answer: ``text`` is the
  answer, ``reasoning`` the thinking (stored in ``calls.reasoning``).

``rank``: for the local model the ranking is chosen by the model itself among the
candidates (:mod:`re2llm_tui.llm.ranking`, 10 distinct real candidates); for any other
model it is ``complete`` with the prompt as the user message + ``parsing.parse_ranking``.

SQLite connections are per thread (one workspace connection per thread that uses the
client); the sync wrappers run the coroutines on one private event-loop thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from re2llm_tui.control import current as current_control
from re2llm_tui.errors import UserError
from re2llm_tui.llm.budget import CallBudget, SharedBudget
from re2llm_tui.llm.cache import (
    CACHE_KEY_VERSION,
    CallLog,
    cache_key,
    canonical_json,
    result_from_hit,
)
from re2llm_tui.llm.concurrency import InFlight, LoopSemaphores
from re2llm_tui.llm.decoding import RANK_MAX_TOKENS, merge_decoding, plain
from re2llm_tui.llm.errors import (
    AuthFailed,
    BudgetExceeded,
    EmptyReply,
    error_line,
    is_auth_error,
    is_retryable,
)
from re2llm_tui.llm.inflight import Claims, ClaimYielded, stale_after
from re2llm_tui.llm.litellm_import import import_litellm
from re2llm_tui.llm.models import (
    DEFAULT_MODEL,
    DEMO_NOTICE,
    LOCAL_PROVIDER,
    MODEL_ENV,
    check_model,
    check_reachable,
    default_concurrency,
    default_rank_method,
    is_local_model,
    resolve_model,
)
from re2llm_tui.llm.results import LLMResult, RankResult, Stats
from re2llm_tui.llm.retry import RetryPolicy, send_with_retries
from re2llm_tui.llm.sync import LoopThread
from re2llm_tui.llm.transport import Transport, check_transport

#: the former private helper, still imported by tests/test_llm_local.py
_litellm = import_litellm

#: what other modules import from here (re-exported from the modules that define them)
__all__ = [
    "CACHE_KEY_VERSION", "DEFAULT_MODEL", "DEMO_NOTICE", "LOCAL_PROVIDER", "MODEL_ENV",
    "RANK_MAX_TOKENS", "AuthFailed", "BudgetExceeded", "EmptyReply", "LLMClient", "LLMResult",
    "RankResult", "SharedBudget", "Stats", "cache_key", "canonical_json", "check_reachable",
    "is_auth_error", "is_local_model", "is_retryable", "resolve_model",
]


class LLMClient:
    """See the module docstring."""

    def __init__(self, db_path=None, model: str | None = None, api_bases: Sequence[str] = (),
                 concurrency: int | None = None, timeout: float = 60.0, max_retries: int = 4,
                 max_cost: float | None = None, max_calls: int | None = None,
                 temperature: float = 0.0, seed: int = 0, *, retry_base: float = 0.5,
                 retry_cap: float = 20.0, rank_method: str | None = None,
                 use_cache: bool = True, shared_budget: SharedBudget | None = None,
                 transport: str | None = None, max_reply_bytes: int | None = None,
                 reasoning_effort: str | None = None, declared: dict | None = None) -> None:
        from re2llm_tui.llm.capabilities import check_effort, effort_from_env

        self.db_path = db_path
        self.model = resolve_model(model)
        self.api_bases = tuple(b.strip() for b in (api_bases or ()) if b and b.strip())
        if concurrency is not None and concurrency < 1:
            raise UserError(f"--concurrency must be >= 1 (got {concurrency})")
        if max_calls is not None and max_calls < 0:
            raise UserError(f"--max-calls must be >= 0 (got {max_calls})")
        if max_cost is not None and max_cost < 0:
            raise UserError(f"--max-cost must be >= 0 (got {max_cost})")
        self.concurrency = concurrency or default_concurrency(self.model, self.api_bases)
        self.timeout = float(timeout)
        self.temperature = temperature
        self.seed = seed
        self.use_cache = use_cache
        self._rank_method = rank_method
        self.stats = Stats()
        self._retry = RetryPolicy(max(0, int(max_retries)), retry_base, retry_cap)
        self._budget = CallBudget(max_calls, max_cost, shared_budget)
        self._calls = CallLog(db_path)
        # max_reply_bytes: None reads $RE2LLM_MAX_REPLY_BYTES, else 4 MiB (llm/replies.py)
        self._transport = Transport(self.api_bases, self.timeout, check_transport(transport),
                                    pool=self.concurrency, max_reply_bytes=max_reply_bytes)
        self._sems = LoopSemaphores(self.concurrency)
        self._inflight = InFlight()
        # a request another process on the workspace is sending is waited for, not re-sent
        self._claims = Claims(self._calls, stale_after(self.timeout, self._retry.max_retries,
                                                       self._retry.cap), enabled=use_cache)
        self._loop = LoopThread()
        self._lock = threading.Lock()   # guards stats
        self._checked = False
        self._auth_failed: str | None = None
        # --reasoning-effort (None: $RE2LLM_REASONING_EFFORT, set by a command for the
        # processes it spawns); declarations: given, else the workspace's for the model
        self.reasoning_effort = check_effort(reasoning_effort) if reasoning_effort \
            is not None else effort_from_env()
        self._declare_now = {k: v for k, v in (declared or {}).items() if v is not None}
        self._declared: dict | None = None
        self._profile = None

    def options(self) -> dict:
        """The constructor arguments that rebuild an equivalent client in another process
        (no secrets: keys are read from the environment there too)."""
        return {"db_path": None if self.db_path is None else str(self.db_path),
                "model": self.model, "api_bases": tuple(self.api_bases),
                "concurrency": self.concurrency, "timeout": self.timeout,
                "max_retries": self.max_retries, "max_cost": self.max_cost,
                "max_calls": self.max_calls, "temperature": self.temperature,
                "seed": self.seed, "retry_base": self.retry_base, "retry_cap": self.retry_cap,
                "rank_method": self._rank_method, "use_cache": self.use_cache,
                "transport": self._transport.choice,
                "max_reply_bytes": self._transport.max_reply_bytes,
                "reasoning_effort": self.reasoning_effort, "declared": self.declared}

    # ----------------------------------------------------------------- properties
    @property
    def max_retries(self) -> int:
        return self._retry.max_retries

    @property
    def retry_base(self) -> float:
        return self._retry.base

    @property
    def retry_cap(self) -> float:
        return self._retry.cap

    @property
    def max_calls(self) -> int | None:
        return self._budget.max_calls

    @property
    def max_cost(self) -> float | None:
        return self._budget.max_cost

    @property
    def shared_budget(self) -> SharedBudget | None:
        """The :class:`SharedBudget` this client counts against, if any."""
        return self._budget.shared

    @property
    def calls_started(self) -> int:
        """Requests this client reserved against ``max_calls`` (sent or being sent)."""
        return self._budget.started

    @calls_started.setter
    def calls_started(self, n: int) -> None:
        # a parent process takes over the count of its workers' SharedBudget
        self._budget.started = int(n)

    @property
    def is_local(self) -> bool:
        return is_local_model(self.model)

    @property
    def is_demo_model(self) -> bool:
        """True for the embedded 135M demo model (tell the user how to plug a real one)."""
        return self.is_local

    @property
    def demo_notice(self) -> str:
        return DEMO_NOTICE

    @property
    def transport(self) -> str:
        """``fast`` or ``litellm``: how this client's requests reach the model
        (``--transport``; ``auto`` picks ``fast`` for OpenAI-compatible ``--api-base``)."""
        if self.is_local:
            return "litellm"
        return self._transport.kind(self.model)

    @property
    def declared(self) -> dict:
        """What the user declared about the model (``--reasoning``, ``--no-temperature``):
        the flags given to this client over those remembered in the workspace for the
        model, remembered in their turn (:mod:`re2llm_tui.store.model_profiles`)."""
        if self._declared is None:
            declared = dict(self._declare_now)
            if self.db_path is not None and not self.is_local:
                from re2llm_tui.store.model_profiles import resolve_declared

                declared = resolve_declared(self.workspace(), self.model,
                                            self._declare_now.get("reasoning"),
                                            self._declare_now.get("no_temperature"))
            self._declared = declared
        return dict(self._declared)

    @property
    def profile(self):
        """The model's :class:`~re2llm_tui.llm.capabilities.Decoding` under the effort and
        the declarations (decided once; a one-line UserError for an effort it refuses)."""
        if self._profile is None:
            from re2llm_tui.llm.capabilities import Declared, decoding_profile

            self._profile = decoding_profile(self.model, self.reasoning_effort,
                                             Declared.of(self.declared),
                                             want_temperature=self.temperature)
        return self._profile

    @property
    def sampled(self) -> bool:
        """Each reply is one sample (no temperature 0 reaches the model), not a greedy
        decode."""
        return self.profile.sampled

    def decoding_record(self) -> dict:
        """What a run's ``params`` record about decoding: nothing for a model that decodes
        greedily as before (so its runs' params, and their resumption, are unchanged); else
        flat keys ``runs compare`` diffs: ``sampled``, ``temperature`` (sent; None: none),
        ``reasoning_effort``, ``is_reasoning``, ``limit_param``, ``output_limit`` (of a
        ranking reply)."""
        p = self.profile
        if plain(p):
            return {}
        return {"sampled": p.sampled, "temperature": p.temperature,
                "reasoning_effort": p.effort, "is_reasoning": p.is_reasoning,
                "limit_param": p.limit_param, "output_limit": p.output_limit(RANK_MAX_TOKENS)
                if p.is_reasoning else RANK_MAX_TOKENS}

    def sampled_note(self) -> str:
        """One sentence for a run's summary: its replies are sampled, and why ('' when the
        model decodes greedily)."""
        p = self.profile
        if not p.sampled:
            return ""
        why = p.note or "the model takes no temperature 0"
        effort = f", reasoning effort {p.effort}" if p.effort else ""
        return f"replies are sampled, not greedy ({why}{effort})"

    @property
    def rank_method(self) -> str:
        """How :meth:`rank` turns a prompt into a ranking for this model."""
        return self._rank_method or default_rank_method(self.model)

    # ----------------------------------------------------------------- validation
    def check(self) -> None:
        """Validate model string, keys and ``--api-base`` before any work (one-line UserError)."""
        if self._checked:
            return
        self.model = check_model(self.model, self.api_bases, self._rank_method)
        self._transport.kind(self.model)      # --transport fast where it cannot serve
        self._profile = self._declared = None  # the model string may have been normalised
        self.profile                          # an effort the model refuses: one line, now
        self._checked = True

    # ----------------------------------------------------------------- workspace
    def workspace(self):
        """This thread's connection to the client's workspace (sqlite-utils Database)."""
        return self._calls.db()

    def run_totals(self, run_id: int) -> dict:
        """Calls, cache hits, failures, tokens and cost logged for one run."""
        return self._calls.run_totals(run_id)

    # ----------------------------------------------------------------- calls
    async def complete(self, messages: Sequence[dict], *, purpose: str = "chat",
                       run_id: int | None = None, **decoding) -> LLMResult:
        """One chat completion (cached).  Raises :class:`BudgetExceeded` only."""
        messages = [dict(m) for m in messages]
        dec = merge_decoding(self.temperature, self.seed, decoding, self.profile)
        key = cache_key(self.model, messages, dec)
        request = {"messages": messages, "decoding": dec}
        return await self._cached_call(
            key, purpose, run_id, request,
            lambda: self._transport.chat(self.model, messages, dec), LLMResult)

    async def rank(self, prompt: str, candidates: Sequence[str], *, k: int = 10,
                   run_id: int | None = None, **decoding) -> RankResult:
        """Rank ``candidates`` for ``prompt``: ``k`` distinct candidate indices, best first."""
        from re2llm_tui.llm.parsing import parse_ranking

        candidates = list(candidates)
        method = self.rank_method
        messages = [{"role": "user", "content": prompt}]
        if method == "generate":
            # the same bound for every model, so that local and served runs decode alike
            decoding.setdefault("max_tokens", RANK_MAX_TOKENS)
            res = await self.complete(messages, purpose="rank", run_id=run_id, **decoding)
            out = RankResult(**dataclasses.asdict(res))
            if res.ok:
                parsed = parse_ranking(res.text, candidates, k)
                out.ranking, out.hallucinations = list(parsed.ranking), list(parsed.hallucinations)
            return out
        from re2llm_tui.llm.ranking import METHODS

        dec = merge_decoding(self.temperature, self.seed, decoding, self.profile)
        extra = {"candidates": candidates, "k": k, "method": method,
                 "method_version": METHODS[method].version}
        key = cache_key(self.model, messages, dec, extra)
        request = {"messages": messages, "decoding": dec, **extra}
        return await self._cached_call(
            key, "rank", run_id, request,
            lambda: self._transport.local_rank(self.model, prompt, candidates, k, method, dec),
            RankResult)

    def _lookup(self, key: str) -> dict | None:
        return self._calls.lookup(key) if self.use_cache else None

    async def _cached_call(self, key: str, purpose: str, run_id, request: dict,
                           send: Callable[[], Awaitable[LLMResult]], cls):
        """A hit from the cache, the result of an identical call in flight, or a new call."""
        hit = self._lookup(key)
        if hit is not None:
            return self._serve_hit(hit, key, purpose, run_id, cls)
        pending = self._inflight.pending(key)
        if pending is not None:
            res = await asyncio.shield(pending)
            hit = self._lookup(key)
            if hit is not None:
                return self._serve_hit(hit, key, purpose, run_id, cls)
            return res
        return await self._inflight.lead(key, lambda: self._claims.send_once(
            key, lambda claim: self._send_and_record(key, purpose, run_id, request, send, cls,
                                                     claim),
            lambda hit: self._serve_hit(hit, key, purpose, run_id, cls)))

    async def _send_and_record(self, key, purpose, run_id, request, send, cls, claim=None):
        """Send and record; None (nothing sent) when ``claim`` says the reply is in the
        cache or another process is sending it (:mod:`~re2llm_tui.llm.inflight`)."""
        res = await self._attempts(send, cls, claim)
        if res is None:
            return None
        rank = cls is RankResult
        res.call_id = self._calls.record(
            key=key, model=self.model, purpose=purpose, run_id=run_id, request=request,
            res=res, ranking=getattr(res, "ranking", None) if rank else None,
            hallucinations=getattr(res, "hallucinations", None) if rank else None,
            claim=claim)
        with self._lock:
            self.stats.count_sent(res)
        self._budget.spend(res.cost)
        return res

    def _serve_hit(self, hit: dict, key, purpose, run_id, cls):
        res = result_from_hit(hit, cls, self.model)
        # log the hit itself (free) so runs can sum hits; the reply stays in the original row
        self._calls.record(key=key, model=self.model, purpose=purpose, run_id=run_id,
                           request={}, res=res, cached_from=hit["id"])
        with self._lock:
            self.stats.cache_hits += 1
        return res

    async def _attempts(self, send, cls, claim=None):
        """Send with retries; returns a result with ``error`` set after the last failure,
        or None when ``claim`` cannot be taken (the slot is given back at once)."""
        control = current_control()
        async with self._sems.get():
            # pause waits here, stop raises: nothing is sent once either is asked
            await control.acheck()
            # checked when the request is about to be sent, so cost already spent counts
            if self._auth_failed:
                raise AuthFailed(self._auth_failed)
            if claim is not None and not claim.take():
                return None
            self._budget.reserve(spent=self.stats.cost)
            # the call's latency starts now, not while it waited for a concurrency slot
            t0 = time.perf_counter()
            # a pause between attempts gives the claim back (llm/inflight.py)
            answer = None if claim is None else functools.partial(claim.answer_pause, control)
            try:
                out = await send_with_retries(send, self._retry, control, model=self.model,
                                              answer=answer)
            except AuthFailed as exc:
                self._auth_failed = str(exc)   # every later call stops at once too
                raise
            except ClaimYielded:
                return None                    # another process has the reply: wait for it
        latency = time.perf_counter() - t0
        if out.error is not None:
            return cls(error=error_line(out.error), model=self.model, attempts=out.attempts,
                       latency_s=latency)
        res = out.result
        res.attempts = out.attempts
        res.latency_s = latency
        return res

    # ----------------------------------------------------------------- sync bridge
    def run_sync(self, coro: Coroutine) -> Any:
        """Run ``coro`` (a coroutine using this client) from synchronous code, on the
        client's private event-loop thread, and return its result.

        Many calls in one coroutine (``asyncio.gather``) run concurrently up to
        ``concurrency``.  Raises :class:`RuntimeError` inside a running event loop (await
        the coroutine there instead) and :class:`KeyboardInterrupt` if :meth:`close`
        cancelled it.
        """
        return self._loop.run(coro)

    def complete_sync(self, messages, **kw) -> LLMResult:
        return self.run_sync(self.complete(messages, **kw))

    def rank_sync(self, prompt, candidates, **kw) -> RankResult:
        return self.run_sync(self.rank(prompt, candidates, **kw))

    def close(self) -> None:
        if self._loop.started:
            try:   # the fast path's pooled connections live on the loop thread
                self._loop.run(self._transport.aclose())
            except Exception:  # noqa: BLE001 - closing: nothing left to save
                pass
        self._loop.close()
        self._claims.release_all()
        self._calls.close()
        # loop-bound state: a later call starts afresh on a new loop
        self._sems.clear()
        self._inflight.clear()
        self._transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
