"""The one LLM client of the project: async, over litellm, cached in the workspace.

Every LLM call goes through :class:`LLMClient`.  Public API (stable; other modules use it)::

    client = LLMClient(db_path, model=None, api_bases=(), concurrency=None, timeout=60.0,
                       max_retries=4, max_cost=None, max_calls=None, temperature=0.0, seed=0)
    client.check()                       # one-line UserError for a bad model/key/--api-base
    res  = await client.complete(messages, purpose="chat", run_id=None, **decoding)  # LLMResult
    rres = await client.rank(prompt, candidates, k=10, run_id=None)                  # RankResult
    client.complete_sync(...), client.rank_sync(...)    # the same from synchronous code
    client.stats                         # Stats: calls, cache_hits, failed, cost, tokens, ...
    client.is_demo_model                 # True for the embedded 135M demo model
    client.close()

* ``model``: a litellm model string (``gpt-4o-mini``, ``anthropic/...``, ``ollama/...``,
  ``hosted_vllm/...``, or a custom provider registered with ``litellm.custom_provider_map``);
  default ``$RE2LLM_MODEL``, else the embedded local model ``local/smollm2-135m``
  (:mod:`re2llm_tui.llm.local`).  Keys come from the provider's usual environment variables
  and are never stored.
* ``api_bases``: one OpenAI-compatible server, or several spread with litellm's ``Router``.
* **Cache**: the ``calls`` table of the workspace.  Key = sha256 of (model, messages, decoding
  parameters incl. temperature and seed) and, for :meth:`rank` on the local model, the
  candidates, ``k`` and the ranking method's version.  Every finished call is committed at
  once (a killed run keeps it); a hit is served without a request and logged as a row with
  ``cached=1``.  Failed calls are logged with ``status='failed'`` and are not cached.
  Identical concurrent requests share one call.
* **Retries**: rate limits, timeouts, connection errors, 5xx and unparseable replies are
  retried ``max_retries`` times with exponential backoff and jitter (or the server's
  ``Retry-After``); then the call is returned with ``error`` set (and logged as failed):
  callers go on and count failures.
* **Budget**: ``max_calls`` (requests actually sent, cache hits free) and ``max_cost`` (USD,
  litellm's cost tables; 0 for local models): once reached, the next request raises
  :class:`BudgetExceeded` before it is sent; everything done so far is in the cache, so the
  same job rerun later resumes where it stopped.  In-flight calls may overshoot ``max_cost``
  by at most ``concurrency`` calls.
* ``rank``: for the local model the ranking is chosen by the model itself among the
  candidates (:mod:`re2llm_tui.llm.ranking`, 10 distinct real candidates); for any other
  model it is ``complete`` with the prompt as the user message + ``parsing.parse_ranking``.

SQLite connections are per thread (one workspace connection per thread that uses the
client); the sync wrappers run the coroutines on one private event-loop thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import random
import socket
import sqlite3
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Sequence
from urllib.parse import urlsplit

from re2llm_tui.control import RunStop, StopRequested
from re2llm_tui.control import current as current_control
from re2llm_tui.errors import UserError

#: the embedded demo model (SmolLM2-135M-Instruct, in-process via llama-cpp-python)
DEFAULT_MODEL = "local/smollm2-135m"
LOCAL_PROVIDER = "local"
MODEL_ENV = "RE2LLM_MODEL"
#: max_tokens of a free-generation ranking reply (10 titles fit with room to spare)
RANK_MAX_TOKENS = 512
#: bump when the cache key layout changes
CACHE_KEY_VERSION = "calls-v1"

DEMO_NOTICE = (
    "Using the embedded demo model SmolLM2-135M (135M parameters, CPU, in-process): a weak "
    "recommender (HR@10 0.24 games / 0.22 movies on 100 test sessions; random 0.20). Plug in "
    "a real model with --model "
    "(or RE2LLM_MODEL), e.g. --model gpt-4o-mini with OPENAI_API_KEY set, --model "
    "anthropic/claude-3-5-haiku-latest with ANTHROPIC_API_KEY, --model ollama/llama3.1, or "
    "--model hosted_vllm/<name> --api-base http://host:8000/v1 (repeat --api-base to spread "
    "calls over several servers)."
)


class BudgetExceeded(RunStop):
    """``max_cost`` or ``max_calls`` was reached; nothing was sent for this call."""

    exit_code = 3


class AuthFailed(UserError):
    """The provider refused the credentials (401/403): every further call would fail too,
    so the run stops at once with this one line instead of logging a failure per call."""


class EmptyReply(Exception):
    """The provider answered without any text (retried; never cached as a success)."""


class SharedBudget:
    """``--max-calls`` / ``--max-cost`` counted across processes (a job's workers share one).

    Pass the same instance to every process's :class:`LLMClient` (``shared_budget=``); it
    crosses into spawned processes as process-shared values.
    """

    def __init__(self, ctx=None) -> None:
        import multiprocessing

        ctx = ctx or multiprocessing.get_context("spawn")
        self.lock = ctx.Lock()
        self.calls = ctx.Value("q", 0, lock=False)
        self.cost = ctx.Value("d", 0.0, lock=False)

    def reserve(self, max_calls: int | None, max_cost: float | None) -> None:
        with self.lock:
            if max_calls is not None and self.calls.value >= max_calls:
                raise BudgetExceeded(f"--max-calls {max_calls} reached ({self.calls.value} "
                                     "calls sent); rerun to resume")
            if max_cost is not None and self.cost.value >= max_cost:
                raise BudgetExceeded(f"--max-cost ${max_cost:g} reached "
                                     f"(${self.cost.value:.4f} spent); rerun to resume")
            self.calls.value += 1

    def spend(self, cost: float) -> None:
        if cost:
            with self.lock:
                self.cost.value += float(cost)


@dataclass
class LLMResult:
    """One call's outcome.  ``error`` is ``None`` on success."""

    text: str = ""
    cached: bool = False
    cost: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    call_id: int | None = None
    error: str | None = None
    model: str = ""
    api_base: str | None = None
    attempts: int = 0
    cached_tokens: int = 0      # prompt tokens served from the engine's/provider's prefix cache

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class RankResult(LLMResult):
    """A ranking call: ``ranking`` holds distinct candidate indices, best first."""

    ranking: list[int] = field(default_factory=list)
    hallucinations: list[str] = field(default_factory=list)


@dataclass
class Stats:
    """Totals over the calls of one client (cache hits are free)."""

    calls: int = 0          # requests actually sent (finished, ok or failed)
    cache_hits: int = 0
    failed: int = 0
    retries: int = 0
    cost: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0  # summed over sent requests

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["tokens"] = self.tokens
        return d


# --------------------------------------------------------------------------- helpers

def _litellm():
    """Import litellm lazily (~3 s), offline cost map, quiet."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


def resolve_model(model: str | None) -> str:
    """``--model``, then ``$RE2LLM_MODEL``, then the embedded demo model."""
    m = (model or os.environ.get(MODEL_ENV) or "").strip()
    return m or DEFAULT_MODEL


def is_local_model(model: str) -> bool:
    return model.split("/", 1)[0] == LOCAL_PROVIDER


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def cache_key(model: str, messages: Sequence[dict], decoding: dict, extra: dict | None = None) -> str:
    """sha256 of everything that determines a reply."""
    payload = {"v": CACHE_KEY_VERSION, "model": model, "messages": list(messages),
               "decoding": decoding}
    if extra:
        payload["extra"] = extra
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def _safe_base(url: str | None) -> str | None:
    """An api_base without user info (never store credentials)."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else url


def check_reachable(url: str, timeout: float = 3.0) -> None:
    """A TCP connect to an ``--api-base``; one-line UserError if nothing listens."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"--api-base {url!r} is not an http(s) URL (e.g. http://localhost:8000/v1)")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise UserError(f"--api-base {_safe_base(url)} is unreachable ({reason})") from None


#: litellm exception class names that are worth retrying
_RETRYABLE = {
    "RateLimitError", "Timeout", "APIConnectionError", "InternalServerError",
    "ServiceUnavailableError", "BadGatewayError", "APIResponseValidationError",
    "JSONDecodeError", "TimeoutError", "ReadTimeout", "ConnectTimeout", "EmptyReply",
}
_AUTH = {"AuthenticationError", "PermissionDeniedError"}
_FATAL = {"AuthenticationError", "PermissionDeniedError", "NotFoundError", "BadRequestError",
          "ContextWindowExceededError", "ContentPolicyViolationError", "UnsupportedParamsError",
          "BudgetExceededError"}


def is_retryable(exc: BaseException) -> bool:
    names = {c.__name__ for c in type(exc).__mro__}
    if names & _FATAL:
        return False
    if names & _RETRYABLE or isinstance(exc, (asyncio.TimeoutError, ConnectionError)):
        return True
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status == 429 or status >= 500
    # litellm wraps an unparseable body in a generic APIError without a status
    return "APIError" in names


def is_auth_error(exc: BaseException) -> bool:
    """A refused credential: litellm's AuthenticationError/PermissionDeniedError, or 401/403."""
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(names & _AUTH) or getattr(exc, "status_code", None) in (401, 403)


def _error_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    if len(msg) > 300:
        msg = msg[:297] + "..."
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


# --------------------------------------------------------------------------- the client

class LLMClient:
    """See the module docstring."""

    def __init__(self, db_path=None, model: str | None = None, api_bases: Sequence[str] = (),
                 concurrency: int | None = None, timeout: float = 60.0, max_retries: int = 4,
                 max_cost: float | None = None, max_calls: int | None = None,
                 temperature: float = 0.0, seed: int = 0, *, retry_base: float = 0.5,
                 retry_cap: float = 20.0, rank_method: str | None = None,
                 use_cache: bool = True, shared_budget: SharedBudget | None = None) -> None:
        self.db_path = db_path
        self.model = resolve_model(model)
        self.api_bases = tuple(b.strip() for b in (api_bases or ()) if b and b.strip())
        if concurrency is not None and concurrency < 1:
            raise UserError(f"--concurrency must be >= 1 (got {concurrency})")
        if max_calls is not None and max_calls < 0:
            raise UserError(f"--max-calls must be >= 0 (got {max_calls})")
        if max_cost is not None and max_cost < 0:
            raise UserError(f"--max-cost must be >= 0 (got {max_cost})")
        self.concurrency = concurrency or self._default_concurrency()
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.max_cost = max_cost
        self.max_calls = max_calls
        self.temperature = temperature
        self.seed = seed
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.use_cache = use_cache
        self._rank_method = rank_method
        self.stats = Stats()
        self._lock = threading.Lock()
        self._started = 0            # requests reserved against max_calls
        self._local = threading.local()
        self._sems: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # loop -> sem
        self._inflight: dict[tuple[int, str], asyncio.Future] = {}
        self._router = None
        self._checked = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._dbs: list = []
        self._auth_failed: str | None = None
        self.shared_budget = shared_budget

    def options(self) -> dict:
        """The constructor arguments that rebuild an equivalent client in another process
        (no secrets: keys are read from the environment there too)."""
        return {"db_path": None if self.db_path is None else str(self.db_path),
                "model": self.model, "api_bases": tuple(self.api_bases),
                "concurrency": self.concurrency, "timeout": self.timeout,
                "max_retries": self.max_retries, "max_cost": self.max_cost,
                "max_calls": self.max_calls, "temperature": self.temperature,
                "seed": self.seed, "retry_base": self.retry_base, "retry_cap": self.retry_cap,
                "rank_method": self._rank_method, "use_cache": self.use_cache}

    # ----------------------------------------------------------------- properties
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
    def rank_method(self) -> str:
        """How :meth:`rank` turns a prompt into a ranking for this model."""
        if self._rank_method:
            return self._rank_method
        if self.is_local:
            from re2llm_tui.llm.ranking import DEFAULT_LOCAL_METHOD
            return DEFAULT_LOCAL_METHOD
        return "generate"

    def _default_concurrency(self) -> int:
        if is_local_model(self.model):
            return 1            # one in-process model, one core
        if self.api_bases:
            return 4 * len(self.api_bases)
        return 8

    # ----------------------------------------------------------------- validation
    def check(self) -> None:
        """Validate model string, keys and ``--api-base`` before any work (one-line UserError)."""
        if self._checked:
            return
        if self.rank_method and self._rank_method:
            from re2llm_tui.llm.ranking import METHODS
            if self._rank_method not in METHODS:
                raise UserError(f"unknown ranking method {self._rank_method!r}: "
                                f"choose from {', '.join(METHODS)}")
            if not self.is_local and self._rank_method != "generate":
                raise UserError(f"ranking method {self._rank_method!r} needs the local model; "
                                "remote models rank with 'generate'")
        if self.is_local:
            if self.api_bases:
                raise UserError("--api-base needs --model (the model name the server serves, "
                                "e.g. --model hosted_vllm/my-model)")
            from re2llm_tui.llm.local import check_local_model
            check_local_model(self.model)
            self._checked = True
            return
        litellm = _litellm()
        from re2llm_tui.llm import (
            local as _local_mod,  # registers the local provider too
        )
        _local_mod.register()
        provider = self._provider(litellm)
        for base in self.api_bases:
            check_reachable(base)
        if provider in getattr(litellm, "_custom_providers", []):
            self._checked = True
            return
        if not self.api_bases:
            try:
                env = litellm.validate_environment(model=self.model)
            except Exception:  # noqa: BLE001 - unknown to litellm's key table
                env = {"keys_in_environment": True}
            # a missing *_API_BASE is not a key: litellm has a default (ollama: localhost)
            missing_keys = [k for k in (env.get("missing_keys") or [])
                            if not k.endswith("_API_BASE")]
            if not env.get("keys_in_environment", True) and (
                    missing_keys or not env.get("missing_keys")):
                missing = ", ".join(missing_keys) or "an API key"
                raise UserError(f"model {self.model!r} needs {missing} in the environment "
                                "(keys are read from environment variables only)")
        self._checked = True

    def _provider(self, litellm) -> str:
        try:
            from litellm.utils import custom_llm_setup

            custom_llm_setup()  # make providers in litellm.custom_provider_map known
        except ImportError:  # pragma: no cover - older litellm
            pass
        try:
            _model, provider, _key, _base = litellm.get_llm_provider(model=self.model)
        except Exception:  # noqa: BLE001 - litellm raises BadRequestError for unknown strings
            if self.api_bases and "/" not in self.model:
                # a bare name served by an OpenAI-compatible server
                self.model = f"openai/{self.model}"
                return "openai"
            raise UserError(
                f"unknown model string {self.model!r}: use litellm's form, e.g. gpt-4o-mini, "
                "anthropic/claude-3-5-haiku-latest, ollama/llama3.1, hosted_vllm/NAME with "
                f"--api-base, or {DEFAULT_MODEL}") from None
        return provider

    # ----------------------------------------------------------------- workspace
    def _db(self):
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

    def workspace(self):
        """This thread's connection to the client's workspace (sqlite-utils Database)."""
        return self._db()

    def _lookup(self, key: str) -> dict | None:
        if not self.use_cache:
            return None
        row = self._db().execute(
            "SELECT id, response, ranking, hallucinations, prompt_tokens, completion_tokens, "
            "cost, latency_s, api_base FROM calls WHERE key=? AND status='ok' AND cached=0 "
            "ORDER BY id LIMIT 1", [key]).fetchone()
        if row is None:
            return None
        cols = ("id", "response", "ranking", "hallucinations", "prompt_tokens",
                "completion_tokens", "cost", "latency_s", "api_base")
        return dict(zip(cols, row))

    def _record(self, *, key: str, purpose: str, run_id, request: dict, res: LLMResult,
                cached_from: int | None = None, ranking=None, hallucinations=None) -> int:
        status = "ok" if res.error is None else "failed"
        try:
            cur = self._insert_call(key, purpose, run_id, request, res, cached_from, ranking,
                                    hallucinations, status)
        except sqlite3.OperationalError as exc:
            from re2llm_tui.store.workspace import write_error

            raise write_error(exc) from None
        return cur.lastrowid

    def _insert_call(self, key, purpose, run_id, request, res, cached_from, ranking,
                     hallucinations, status):
        return self._db().execute(
            "INSERT INTO calls (key, model, purpose, run_id, request, response, ranking, "
            "hallucinations, status, error, cached, cache_of, prompt_tokens, completion_tokens, "
            "cost, latency_s, attempts, api_base, cached_tokens) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [key, self.model, purpose, run_id,
             None if cached_from is not None else canonical_json(request),
             None if cached_from is not None else res.text,
             None if ranking is None or cached_from is not None else json.dumps(ranking),
             None if hallucinations is None or cached_from is not None
             else json.dumps(hallucinations, ensure_ascii=False),
             status, res.error, 1 if cached_from is not None else 0, cached_from,
             0 if cached_from is not None else res.prompt_tokens,
             0 if cached_from is not None else res.completion_tokens,
             0.0 if cached_from is not None else res.cost,
             0.0 if cached_from is not None else res.latency_s, res.attempts,
             _safe_base(res.api_base), 0 if cached_from is not None else res.cached_tokens])

    # ----------------------------------------------------------------- budget
    def _reserve(self) -> None:
        with self._lock:
            if self._auth_failed:
                raise AuthFailed(self._auth_failed)
            if self.shared_budget is not None:
                self.shared_budget.reserve(self.max_calls, self.max_cost)
                self._started += 1
                return
            if self.max_calls is not None and self._started >= self.max_calls:
                raise BudgetExceeded(f"--max-calls {self.max_calls} reached "
                                     f"({self._started} calls sent); rerun to resume")
            if self.max_cost is not None and self.stats.cost >= self.max_cost:
                raise BudgetExceeded(f"--max-cost ${self.max_cost:g} reached "
                                     f"(${self.stats.cost:.4f} spent); rerun to resume")
            self._started += 1

    def _sem(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        sem = self._sems.get(loop)
        if sem is None:
            sem = self._sems[loop] = asyncio.Semaphore(self.concurrency)
        return sem

    # ----------------------------------------------------------------- calls
    def _decoding(self, decoding: dict) -> dict:
        d = {"temperature": self.temperature, "seed": self.seed}
        d.update({k: v for k, v in decoding.items() if v is not None})
        return d

    async def complete(self, messages: Sequence[dict], *, purpose: str = "chat",
                       run_id: int | None = None, **decoding) -> LLMResult:
        """One chat completion (cached).  Raises :class:`BudgetExceeded` only."""
        messages = [dict(m) for m in messages]
        dec = self._decoding(decoding)
        key = cache_key(self.model, messages, dec)
        request = {"messages": messages, "decoding": dec}
        res = await self._cached_call(key, purpose, run_id, request,
                                      lambda: self._send_chat(messages, dec), LLMResult)
        return res

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

        dec = self._decoding(decoding)
        extra = {"candidates": candidates, "k": k, "method": method,
                 "method_version": METHODS[method].version}
        key = cache_key(self.model, messages, dec, extra)
        request = {"messages": messages, "decoding": dec, **extra}
        return await self._cached_call(
            key, "rank", run_id, request,
            lambda: self._send_local_rank(prompt, candidates, k, method, dec), RankResult)

    async def _cached_call(self, key, purpose, run_id, request, send, cls):
        hit = self._lookup(key)
        if hit is not None:
            return self._serve_hit(hit, key, purpose, run_id, cls)
        # identical requests in flight share one call
        loop = asyncio.get_running_loop()
        fkey = (id(loop), key)
        fut = self._inflight.get(fkey)
        if fut is not None:
            res = await asyncio.shield(fut)
            hit = self._lookup(key)
            if hit is not None:
                return self._serve_hit(hit, key, purpose, run_id, cls)
            return res
        fut = loop.create_future()
        self._inflight[fkey] = fut
        try:
            res = await self._attempts(send, cls)
            ranking = getattr(res, "ranking", None) if cls is RankResult else None
            halls = getattr(res, "hallucinations", None) if cls is RankResult else None
            res.call_id = self._record(key=key, purpose=purpose, run_id=run_id,
                                       request=request, res=res, ranking=ranking,
                                       hallucinations=halls)
            with self._lock:
                self.stats.calls += 1
                self.stats.failed += 0 if res.ok else 1
                self.stats.retries += max(0, res.attempts - 1)
                self.stats.cost += res.cost
                self.stats.prompt_tokens += res.prompt_tokens
                self.stats.completion_tokens += res.completion_tokens
                self.stats.latency_s += res.latency_s
            if self.shared_budget is not None:
                self.shared_budget.spend(res.cost)
            fut.set_result(res)
            return res
        except BaseException as exc:
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # mark retrieved
            raise
        finally:
            self._inflight.pop(fkey, None)

    def _serve_hit(self, hit: dict, key, purpose, run_id, cls):
        res = cls(text=hit["response"] or "", cached=True, cost=0.0,
                  prompt_tokens=hit["prompt_tokens"] or 0,
                  completion_tokens=hit["completion_tokens"] or 0,
                  latency_s=0.0, model=self.model, api_base=hit["api_base"], attempts=0)
        if cls is RankResult:
            res.ranking = json.loads(hit["ranking"]) if hit["ranking"] else []
            res.hallucinations = json.loads(hit["hallucinations"]) if hit["hallucinations"] else []
        # log the hit itself (free) so runs can sum hits; the reply stays in the original row
        res.call_id = hit["id"]
        self._record(key=key, purpose=purpose, run_id=run_id, request={}, res=res,
                     cached_from=hit["id"])
        with self._lock:
            self.stats.cache_hits += 1
        return res

    async def _attempts(self, send, cls):
        """Send with retries; returns a result with ``error`` set after the last failure."""
        attempts = 0
        last_exc: BaseException | None = None
        control = current_control()
        async with self._sem():
            # pause waits here, stop raises: nothing is sent once either is asked
            await control.acheck()
            # checked when the request is about to be sent, so cost already spent counts
            self._reserve()
            # the call's latency starts now, not while it waited for a concurrency slot
            t0 = time.perf_counter()
            while True:
                attempts += 1
                try:
                    res = await send()
                except (asyncio.CancelledError, KeyboardInterrupt, RunStop):
                    raise
                except Exception as exc:  # noqa: BLE001 - every provider error is handled here
                    if control.stopped:
                        # the local engine was interrupted mid-call (litellm may wrap it)
                        raise StopRequested(control.reason) from None
                    last_exc = exc
                    if is_auth_error(exc):
                        self._auth_failed = (
                            f"{self.model}: the provider refused the credentials "
                            f"({_error_line(exc)}); check the API key in the environment "
                            "(or the --api-base URL) and rerun: finished work is saved")
                        raise AuthFailed(self._auth_failed) from None
                    if attempts > self.max_retries or not is_retryable(exc):
                        break
                    delay = min(self.retry_cap, self.retry_base * (2 ** (attempts - 1)))
                    retry_after = _retry_after(exc)
                    delay = random.uniform(0.5 * delay, delay) if retry_after is None \
                        else max(retry_after, 0.0)
                    await asyncio.sleep(delay)
                    await control.acheck()
                    continue
                res.attempts = attempts
                res.latency_s = time.perf_counter() - t0
                return res
        res = cls(error=_error_line(last_exc), model=self.model, attempts=attempts,
                  latency_s=time.perf_counter() - t0)
        return res

    # ----------------------------------------------------------------- transports
    def _get_router(self):
        if self._router is None:
            litellm = _litellm()
            key = self._api_key()
            model_list = [{"model_name": "re2llm-target",
                           "litellm_params": {"model": self.model, "api_base": b,
                                              "api_key": key, "timeout": self.timeout,
                                              "max_retries": 0}}
                          for b in self.api_bases]
            self._router = litellm.Router(model_list=model_list, num_retries=0,
                                          routing_strategy="least-busy",
                                          timeout=self.timeout, set_verbose=False)
        return self._router

    def _api_key(self) -> str | None:
        if self.api_bases:
            # self-hosted OpenAI-compatible servers usually need no key; pass the env's if any
            for var in ("OPENAI_API_KEY", "HOSTED_VLLM_API_KEY"):
                if os.environ.get(var):
                    return os.environ[var]
            return "no-key"
        return None

    async def _send_chat(self, messages, dec) -> LLMResult:
        litellm = _litellm()
        if self.is_local:
            from re2llm_tui.llm import local
            local.register()
        kwargs = dict(messages=messages, **dec)
        if len(self.api_bases) > 1:
            router = self._get_router()
            resp = await asyncio.wait_for(
                router.acompletion(model="re2llm-target", **kwargs), self.timeout + 5)
        else:
            extra = {}
            if self.api_bases:
                extra = {"api_base": self.api_bases[0], "api_key": self._api_key()}
            coro = litellm.acompletion(model=self.model, timeout=self.timeout, max_retries=0,
                                       num_retries=0, **extra, **kwargs)
            # the local model runs in a worker thread that cannot be interrupted
            resp = await (coro if self.is_local else asyncio.wait_for(coro, self.timeout + 5))
        return self._result_from(resp, litellm)

    def _result_from(self, resp, litellm) -> LLMResult:
        try:
            text = resp.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            text = None
        if text is None or not str(text).strip():
            raise EmptyReply("the reply has no text")
        usage = getattr(resp, "usage", None)
        pt = int(getattr(usage, "prompt_tokens", 0) or 0)
        ct = int(getattr(usage, "completion_tokens", 0) or 0)
        details = getattr(usage, "prompt_tokens_details", None)
        cached_tokens = int((details.get("cached_tokens") if isinstance(details, dict) else
                             getattr(details, "cached_tokens", 0)) or 0)
        hidden = getattr(resp, "_hidden_params", {}) or {}
        cost = 0.0
        if not self.is_local:
            cost = hidden.get("response_cost")
            if cost is None and "response_cost" not in hidden:
                # litellm priced it already when the key is there (None: not in its tables)
                try:
                    cost = litellm.completion_cost(completion_response=resp)
                except Exception:  # noqa: BLE001 - model not in the cost tables
                    cost = 0.0
        api_base = hidden.get("api_base") or (self.api_bases[0] if self.api_bases else None)
        return LLMResult(text=text, cost=float(cost or 0.0), prompt_tokens=pt,
                         completion_tokens=ct, model=self.model, api_base=api_base,
                         cached_tokens=cached_tokens)

    async def _send_local_rank(self, prompt, candidates, k, method, dec) -> RankResult:
        """The local provider ranks inside the candidate set (through litellm, like chat)."""
        from re2llm_tui.llm import local

        litellm = _litellm()
        local.register()
        resp = await litellm.acompletion(
            model=self.model, messages=[{"role": "user", "content": prompt}],
            rank_candidates=list(candidates), rank_k=k, rank_method=method, num_retries=0,
            **dec)
        base = self._result_from(resp, litellm)
        ranking = (getattr(resp, "_hidden_params", {}) or {}).get("re2llm_ranking")
        if ranking is None:
            raise ValueError("the local provider returned no ranking")
        return RankResult(text=base.text, ranking=[int(i) for i in ranking], hallucinations=[],
                          prompt_tokens=base.prompt_tokens,
                          completion_tokens=base.completion_tokens, model=self.model,
                          cached_tokens=base.cached_tokens)

    # ----------------------------------------------------------------- sync wrappers
    def _run(self, coro):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise RuntimeError("use 'await client.complete(...)' inside a running event loop")
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._loop_thread = threading.Thread(
                    target=self._loop.run_forever, name="re2llm-llm-loop", daemon=True)
                self._loop_thread.start()
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result()
        except concurrent.futures.CancelledError:
            raise KeyboardInterrupt from None

    def complete_sync(self, messages, **kw) -> LLMResult:
        return self._run(self.complete(messages, **kw))

    def rank_sync(self, prompt, candidates, **kw) -> RankResult:
        return self._run(self.rank(prompt, candidates, **kw))

    def close(self) -> None:
        if self._loop is not None:
            loop = self._loop

            def _stop():
                for task in asyncio.all_tasks(loop):
                    task.cancel()
                loop.call_soon(loop.stop)

            loop.call_soon_threadsafe(_stop)
            if self._loop_thread:
                self._loop_thread.join(timeout=5)
                if not self._loop_thread.is_alive():
                    loop.close()
            self._loop = None
        with self._lock:
            dbs, self._dbs = self._dbs, []
        for db in dbs:
            try:
                db.conn.close()
            except Exception:  # noqa: BLE001 - another thread's connection
                pass
        self._local = threading.local()
        # loop-bound state: a later call starts afresh on a new loop
        self._sems.clear()
        self._inflight.clear()
        self._router = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ----------------------------------------------------------------- run totals
    def run_totals(self, run_id: int) -> dict:
        """Calls, cache hits, failures, tokens and cost logged for one run."""
        row = self._db().execute(
            "SELECT COUNT(*), COALESCE(SUM(cached),0), "
            "COALESCE(SUM(status='failed'),0), COALESCE(SUM(cost),0), "
            "COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(completion_tokens),0), "
            "COALESCE(SUM(latency_s),0) FROM calls WHERE run_id=?", [run_id]).fetchone()
        return {"calls": row[0] - row[1], "cache_hits": row[1], "failed": row[2],
                "cost": row[3], "prompt_tokens": row[4], "completion_tokens": row[5],
                "latency_s": row[6]}


def _retry_after(exc: BaseException) -> float | None:
    """A server's ``Retry-After`` (seconds), when the exception carries the response."""
    resp = getattr(exc, "response", None)
    headers = getattr(resp, "headers", None)
    if not headers:
        return None
    try:
        value = headers.get("retry-after")
        return None if value is None else min(float(value), 60.0)
    except (TypeError, ValueError):
        return None
