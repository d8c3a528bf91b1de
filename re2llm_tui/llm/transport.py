"""How a request reaches a model: litellm's ``acompletion`` (several ``--api-base`` servers
used least-busy first, :class:`LeastBusy`), the local provider's ranking inside the
candidate set, or -- for OpenAI-compatible servers -- a lean HTTP path (:class:`FastHTTP`).

A transport sends one request and returns an :class:`LLMResult` (text, usage, cost, the
server that answered) or raises the provider's exception; retries, the cache and the budget
are the client's business.

Which path (``--transport`` / ``$RE2LLM_TRANSPORT``, :func:`resolve_transport`):

* ``litellm``: every provider, as always.
* ``fast``: ``hosted_vllm/NAME`` or ``openai/NAME`` with ``--api-base``: one pooled
  ``aiohttp`` session (a litellm dependency) per event loop posts ``/chat/completions`` itself (the same JSON body
  litellm sends), spreads calls over several servers least-busy first, and raises exceptions
  named like litellm's (``RateLimitError``, ``InternalServerError``, ``AuthenticationError``,
  ...) with ``status_code`` and ``response`` so that :mod:`~re2llm_tui.llm.errors` classifies
  them alike.  Cost: litellm's per-token rates, looked up once per model.  Measured against
  the loopback stub: ~1 ms of client CPU per call instead of ~3.5 ms through litellm
  (``benchmarks/bench_llm_client.py``).
* ``auto`` (default): ``fast`` where it applies, ``litellm`` otherwise.

Both paths read a reply alike (:mod:`~re2llm_tui.llm.replies`): at most ``--max-reply-bytes``
of body, text parts joined, token counts checked -- a call whose usage is missing or
implausible counts its tokens from the request (litellm's ``token_counter``) and its
``max_tokens`` instead, and its cost from those (``usage_estimated``).  Credentials in an
``--api-base`` URL (``http://user:pw@host/v1``) are sent as HTTP Basic to that server, in
place of an API key, and never leave the URL otherwise (results carry the bare URL).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import Sequence

from re2llm_tui.errors import UserError
from re2llm_tui.llm.decoding import output_limit_of, sendable
from re2llm_tui.llm.errors import EmptyReply, OutputLimitReached
from re2llm_tui.llm.litellm_import import import_litellm
from re2llm_tui.llm.models import is_local_model, safe_base
from re2llm_tui.llm.replies import (
    ReplyGuard,
    ReplyTooLarge,
    check_max_reply_bytes,
    finite_cost,
    guard_litellm,
    read_capped_aiohttp,
    reply_text,
    reset_guard,
    set_guard,
    split_credentials,
    token_count,
    usage_of,
)
from re2llm_tui.llm.results import LLMResult, RankResult
from re2llm_tui.llm.thinking import Reply, reasoning_tokens_of, split_message

TRANSPORT_ENV = "RE2LLM_TRANSPORT"
TRANSPORTS = ("auto", "litellm", "fast")
#: providers whose ``--api-base`` servers speak OpenAI's chat API as litellm sends it
FAST_PROVIDERS = ("hosted_vllm", "openai")


def check_transport(choice: str | None) -> str:
    """``--transport``, else ``$RE2LLM_TRANSPORT``, else ``auto`` (one-line UserError)."""
    c = (choice or os.environ.get(TRANSPORT_ENV) or "auto").strip().lower()
    if c not in TRANSPORTS:
        raise UserError(f"unknown transport {c!r}: choose from {', '.join(TRANSPORTS)}")
    return c


def use_transport(choice: str | None) -> str:
    """A command's ``--transport``: checked, and made this process's ``$RE2LLM_TRANSPORT`` so
    that the processes it spawns (training jobs, client processes) take the same path."""
    c = check_transport(choice)
    if choice is not None:
        os.environ[TRANSPORT_ENV] = c
    return c


def fast_applies(model: str, api_bases: Sequence[str]) -> bool:
    """The fast path serves ``hosted_vllm/NAME`` and ``openai/NAME`` with ``--api-base``."""
    return bool(api_bases) and "/" in model and model.split("/", 1)[0] in FAST_PROVIDERS


def resolve_transport(choice: str, model: str, api_bases: Sequence[str]) -> str:
    """``litellm`` or ``fast`` for this model (``auto``: fast where it applies)."""
    ok = fast_applies(model, api_bases)
    if choice == "fast" and not ok:
        raise UserError(f"--transport fast needs an OpenAI-compatible --api-base and "
                        f"--model hosted_vllm/NAME or openai/NAME (got {model!r}"
                        f"{'' if api_bases else ' without --api-base'}); use --transport "
                        "litellm or auto")
    return "fast" if choice == "fast" or (choice == "auto" and ok) else "litellm"


class LeastBusy:
    """Several servers: each request goes to one with the fewest requests in flight (ties
    in turn, so a retry after a failure moves on to the next server).  It replaced litellm's
    ``Router`` (routing_strategy least-busy), which cost ~3.5 ms of CPU per call on top of
    ``acompletion`` -- twice the single-server path."""

    def __init__(self, n: int) -> None:
        self.busy = [0] * n
        self._turn = itertools.count()

    def pick(self) -> int:
        n = len(self.busy)
        if n == 1:
            return 0
        low = min(self.busy)
        start = next(self._turn)
        for j in range(n):
            i = (start + j) % n
            if self.busy[i] == low:
                return i
        return 0  # pragma: no cover


class Transport:
    """Sends requests for a model to its provider, to ``api_bases`` (several: least busy
    first), or to the in-process local model."""

    def __init__(self, api_bases: Sequence[str] = (), timeout: float = 60.0,
                 transport: str = "auto", pool: int = 8,
                 max_reply_bytes: int | None = None) -> None:
        self.api_bases = tuple(api_bases)
        self.timeout = timeout
        self.choice = check_transport(transport)
        self.max_reply_bytes = check_max_reply_bytes(max_reply_bytes)
        # (the URL without user info, its "Basic ..." header or None) per server
        self._servers = tuple(split_credentials(b) for b in self.api_bases)
        self._spread = LeastBusy(len(self.api_bases) or 1)
        self._fast: FastHTTP | None = None
        self._pool = pool
        self._costs = CostRates()

    def kind(self, model: str) -> str:
        """``fast`` or ``litellm``: the path this transport takes for ``model``."""
        return resolve_transport(self.choice, model, self.api_bases)

    def api_key(self) -> str | None:
        if self.api_bases:
            # self-hosted OpenAI-compatible servers usually need no key; pass the env's if any
            for var in ("OPENAI_API_KEY", "HOSTED_VLLM_API_KEY"):
                if os.environ.get(var):
                    return os.environ[var]
            return "no-key"
        return None

    async def chat(self, model: str, messages, dec: dict) -> LLMResult:
        """One chat completion with the decoding parameters ``dec``."""
        dec = sendable(dec)
        if self.choice != "litellm" and self.kind(model) == "fast":
            if self._fast is None:
                self._fast = FastHTTP(self.api_bases, self.timeout, self.api_key(), self._pool,
                                      max_reply_bytes=self.max_reply_bytes)
            res = await self._fast.chat(model, messages, dec)
        else:
            res = await self._litellm_chat(model, messages, dec)
        if res.usage_estimated:
            self._estimate(res, model, messages, dec)
        return res

    async def _litellm_chat(self, model: str, messages, dec: dict) -> LLMResult:
        litellm = import_litellm()
        local = is_local_model(model)
        if local:
            from re2llm_tui.llm import local as local_provider
            local_provider.register()
        kwargs = dict(messages=messages, **dec)
        extra, bases, i, auth = {}, tuple(b for b, _ in self._servers), None, None
        if self.api_bases:
            i = self._spread.pick()
            base, auth = self._servers[i]
            bases = (base,)
            extra = {"api_base": base, "api_key": self.api_key()}
            self._spread.busy[i] += 1
        guard = token = None
        if not local:
            # the reply is read beneath litellm: capped, cleaned, the URL's credentials sent
            guard_litellm()
            guard = ReplyGuard(self.max_reply_bytes, auth=auth,
                               openai=fast_applies(model, self.api_bases))
            token = set_guard(guard)
        try:
            coro = litellm.acompletion(model=model, timeout=self.timeout, max_retries=0,
                                       num_retries=0, **extra, **kwargs)
            # the local model runs in a worker thread that cannot be interrupted
            resp = await (coro if local else asyncio.wait_for(coro, self.timeout + 5))
        except Exception:
            if guard is not None and guard.error is not None:
                raise guard.error from None      # why litellm failed, in our words
            raise
        finally:
            if token is not None:
                reset_guard(token)
            if i is not None:
                self._spread.busy[i] -= 1
        if guard is not None and guard.error is not None:
            raise guard.error
        res = result_from(resp, litellm, model, bases, costs=self._costs,
                          limit=output_limit_of(dec))
        if guard is not None and guard.usage_invalid:
            res.usage_estimated = True
        return res

    def _estimate(self, res: LLMResult, model: str, messages, dec: dict) -> None:
        """Tokens and cost of a call whose usage from the server was not believable: the
        request's own tokens and its output limit (``max_tokens``; else the reply's tokens)
        -- an upper bound, so that ``--max-cost`` stays conservative."""
        limit = token_count(dec.get("max_tokens") or dec.get("max_completion_tokens"))
        res.prompt_tokens = count_tokens(model, messages=messages)
        res.completion_tokens = limit if limit else count_tokens(model, text=res.text)
        res.cached_tokens = 0
        res.cost = self._costs.cost(model, res.prompt_tokens, res.completion_tokens)

    async def local_rank(self, model: str, prompt: str, candidates: Sequence[str], k: int,
                         method: str, dec: dict) -> RankResult:
        """The local provider ranks inside the candidate set (through litellm, like chat)."""
        from re2llm_tui.llm import local as local_provider

        litellm = import_litellm()
        local_provider.register()
        resp = await litellm.acompletion(
            model=model, messages=[{"role": "user", "content": prompt}],
            rank_candidates=list(candidates), rank_k=k, rank_method=method, num_retries=0,
            **sendable(dec))
        base = result_from(resp, litellm, model, self.api_bases)
        ranking = (getattr(resp, "_hidden_params", {}) or {}).get("re2llm_ranking")
        if ranking is None:
            raise ValueError("the local provider returned no ranking")
        return RankResult(text=base.text, ranking=[int(i) for i in ranking], hallucinations=[],
                          prompt_tokens=base.prompt_tokens,
                          completion_tokens=base.completion_tokens, model=model,
                          cached_tokens=base.cached_tokens)

    async def aclose(self) -> None:
        """Close the fast path's connections made on the running loop."""
        if self._fast is not None:
            await self._fast.aclose()

    def close(self) -> None:
        """Drop the fast path's clients (bound to the loops they ran on); a later call builds
        new ones."""
        if self._fast is not None:
            self._fast.forget()
            self._fast = None


# ------------------------------------------------------------------ the fast path

class ProviderError(Exception):
    """An HTTP error of an OpenAI-compatible server; subclasses carry litellm's class names
    so that :func:`~re2llm_tui.llm.errors.is_retryable` and ``is_auth_error`` read them the
    same way.  ``response.headers`` holds ``Retry-After``."""

    def __init__(self, message: str, status_code: int | None = None, response=None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response = response


def _named(name: str) -> type[ProviderError]:
    return type(name, (ProviderError,), {"__module__": __name__})


BadRequestError = _named("BadRequestError")
AuthenticationError = _named("AuthenticationError")
PermissionDeniedError = _named("PermissionDeniedError")
NotFoundError = _named("NotFoundError")
UnprocessableEntityError = _named("UnprocessableEntityError")
RateLimitError = _named("RateLimitError")
InternalServerError = _named("InternalServerError")
BadGatewayError = _named("BadGatewayError")
ServiceUnavailableError = _named("ServiceUnavailableError")
APIError = _named("APIError")
APIConnectionError = _named("APIConnectionError")
Timeout = _named("Timeout")
APIResponseValidationError = _named("APIResponseValidationError")

_BY_STATUS = {400: BadRequestError, 401: AuthenticationError, 403: PermissionDeniedError,
              404: NotFoundError, 422: UnprocessableEntityError, 429: RateLimitError,
              500: InternalServerError, 502: BadGatewayError, 503: ServiceUnavailableError}


def _server_message(body: bytes) -> str:
    try:
        err = json.loads(body).get("error")
        msg = err.get("message") if isinstance(err, dict) else err
        if msg:
            return " ".join(str(msg).split())[:200]
    except Exception:  # noqa: BLE001 - any body: fall back to its text
        pass
    return " ".join(body[:200].decode("utf-8", "replace").split())


class CostRates:
    """litellm's per-token prices, looked up once per model (0 for models it does not
    price, like most self-hosted ones): ``cost(pt, ct, cached)``."""

    def __init__(self) -> None:
        self._rates: dict[str, tuple[float, float, float]] = {}

    def rates(self, model: str) -> tuple[float, float, float]:
        r = self._rates.get(model)
        if r is None:
            r = (0.0, 0.0, 0.0)
            try:
                info = import_litellm().get_model_info(model=model)
                inp = finite_cost(info.get("input_cost_per_token") or 0.0) or 0.0
                out = finite_cost(info.get("output_cost_per_token") or 0.0) or 0.0
                cache = info.get("cache_read_input_token_cost")
                r = (inp, out, inp if cache is None else finite_cost(cache) or 0.0)
            except Exception:  # noqa: BLE001 - not in the cost tables: free
                pass
            self._rates[model] = r
        return r

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int,
             cached_tokens: int = 0) -> float:
        """Never negative nor infinite (token counts are checked before they get here)."""
        inp, out, cache = self.rates(model)
        if not (inp or out):
            return 0.0
        cached = min(max(cached_tokens, 0), prompt_tokens)
        cost = (prompt_tokens - cached) * inp + cached * cache + completion_tokens * out
        return finite_cost(cost) or 0.0


def count_tokens(model: str, *, messages=None, text: str | None = None) -> int:
    """litellm's ``token_counter`` for ``messages`` or ``text`` (its default tokenizer for
    models it does not know); ~4 characters a token if even that fails."""
    try:
        n = import_litellm().token_counter(model=model, messages=messages, text=text)
        return max(int(n), 0)
    except Exception:  # noqa: BLE001 - an estimate either way
        size = len(text or "") if messages is None else len(json.dumps(messages))
        return size // 4 + 1


def _env_proxy(base: str) -> str | None:
    """The ``HTTP(S)_PROXY`` that applies to ``base`` (``None`` when none, or ``NO_PROXY``
    exempts its host), as litellm's HTTP clients read them."""
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme)
    if not proxy or not parts.hostname:
        return None
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    if urllib.request.proxy_bypass_environment(host, proxies):
        return None
    return proxy


class FastHTTP:
    """``POST {api_base}/chat/completions`` with one pooled ``aiohttp`` session per event
    loop (measured: ~0.2 ms of CPU per request; httpx ~0.9 ms); several servers are used
    least-busy first (:class:`LeastBusy`).

    Sessions are closed on their own loop: by :meth:`aclose` (the client's loop thread), when
    ``asyncio.run`` shuts its loop down (an async generator holds each session and closes it
    in ``shutdown_asyncgens``), or quietly by :meth:`forget` once their loop is gone.
    """

    def __init__(self, api_bases: Sequence[str], timeout: float, api_key: str | None,
                 pool: int = 8, max_reply_bytes: int | None = None) -> None:
        servers = [split_credentials(b) for b in api_bases]
        # without user info: what results carry, stored with each call
        self.api_bases = tuple(b for b, _ in servers)
        self._urls = tuple(b.rstrip("/") + "/chat/completions" for b in self.api_bases)
        # a server whose URL held credentials gets them as HTTP Basic, in place of the key
        self._auth = tuple(None if basic is None else {"Authorization": basic}
                           for _, basic in servers)
        self._proxies = tuple(_env_proxy(b) for b in self.api_bases)
        self.timeout = timeout
        self.max_reply_bytes = check_max_reply_bytes(max_reply_bytes)
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._pool = max(1, int(pool))
        self._sessions: dict = {}          # loop -> (session, the generator that closes it)
        self._spread = LeastBusy(len(self.api_bases))
        self.costs = CostRates()

    async def _session(self):
        loop = asyncio.get_running_loop()
        entry = self._sessions.get(loop)
        if entry is not None:
            return entry[0]
        import aiohttp

        self._drop_dead()
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=self.timeout), headers=self._headers,
            # not trust_env: it looks up ~/.netrc in a thread on every request (measured
            # +0.1-0.2 ms per call) and its auth clashes with our Authorization header;
            # HTTP(S)_PROXY / NO_PROXY are read once per server instead (_env_proxy)
            trust_env=False)

        async def closer():
            try:
                yield
            finally:
                await session.close()

        gen = closer()
        await gen.__anext__()               # the loop now knows it: shutdown_asyncgens closes it
        self._sessions[loop] = (session, gen)
        return session

    def _drop_dead(self) -> None:
        for loop in [lp for lp in self._sessions if lp.is_closed()]:
            self._quiet_close(*self._sessions.pop(loop))

    @staticmethod
    def _quiet_close(session, gen) -> None:
        # the loop is gone or elsewhere: close the sockets without awaiting (no warnings)
        try:
            conn = session.connector
            if conn is not None and not conn.closed:
                conn._close()
        except Exception:  # noqa: BLE001 - closing: nothing left to save
            pass

    async def chat(self, model: str, messages, dec: dict) -> LLMResult:
        import aiohttp

        session = await self._session()
        name = model.split("/", 1)[1]
        body = json.dumps({"model": name, "messages": messages, **dec},
                          ensure_ascii=False).encode()
        i = self._spread.pick()
        base = self.api_bases[i]
        self._spread.busy[i] += 1
        try:
            async with session.post(self._urls[i], data=body, proxy=self._proxies[i],
                                    headers=self._auth[i]) as resp:
                try:
                    raw = await read_capped_aiohttp(resp, self.max_reply_bytes)
                except ReplyTooLarge:
                    resp.close()            # drop the connection: the rest is never read
                    raise
        except TimeoutError:
            raise Timeout(f"no reply from {safe_base(base)} within {self.timeout:g} s") \
                from None
        except aiohttp.ClientError as exc:
            raise APIConnectionError(f"{safe_base(base)}: {type(exc).__name__} "
                                     f"{' '.join(str(exc).split())}") from None
        finally:
            self._spread.busy[i] -= 1
        if resp.status >= 400:
            cls = _BY_STATUS.get(resp.status)
            if cls is None:
                cls = InternalServerError if resp.status >= 500 else APIError
            raise cls(f"{_server_message(raw)} (HTTP {resp.status} from {safe_base(base)})",
                      resp.status, resp)
        try:
            data = json.loads(raw)
            choice = data["choices"][0]
            message = choice["message"]
            content = message.get("content")
            finish = choice.get("finish_reason")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise APIResponseValidationError(
                f"{safe_base(base)} answered with a body that is not a chat completion") \
                from None
        text = reply_text(content)           # UnusableReply: an object, a number, ...
        reply = split_message({**message, "content": text})
        rt = reasoning_tokens_of(data.get("usage"))
        check_answer(reply, finish, rt, output_limit_of(dec))
        usage = usage_of(data.get("usage"))
        if usage is None:                    # missing or implausible: Transport estimates
            return LLMResult(text=reply.answer, model=model, api_base=base,
                             usage_estimated=True, reasoning=reply.reasoning,
                             finish_reason=finish)
        pt, ct, cached = usage
        return LLMResult(text=reply.answer, cost=self.costs.cost(model, pt, ct, cached),
                         prompt_tokens=pt, completion_tokens=ct, model=model, api_base=base,
                         cached_tokens=cached, reasoning=reply.reasoning,
                         reasoning_tokens=min(rt, ct), finish_reason=finish)

    async def aclose(self) -> None:
        """Close the session of the running loop (its pooled connections)."""
        entry = self._sessions.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()

    def forget(self) -> None:
        """Drop every loop's session: closed on a live loop, quietly where the loop is gone."""
        sessions, self._sessions = self._sessions, {}
        for loop, (session, gen) in sessions.items():
            if loop.is_closed() or not loop.is_running():
                self._quiet_close(session, gen)
            else:
                try:
                    asyncio.run_coroutine_threadsafe(gen.aclose(), loop)
                except RuntimeError:
                    self._quiet_close(session, gen)

    def __del__(self) -> None:
        # a client never closed: close what is left without awaiting (no "Unclosed" noise)
        for loop, (session, gen) in list(getattr(self, "_sessions", {}).items()):
            if loop.is_closed() or not loop.is_running():
                self._quiet_close(session, gen)


def check_answer(reply: Reply, finish: str | None, reasoning_tokens: int,
                 limit: int | None) -> None:
    """A reply with no answer: :class:`OutputLimitReached` when the output limit cut it off
    (``finish_reason`` "length", or thinking left unclosed), else :class:`EmptyReply`."""
    if reply.answer and reply.answer.strip():
        return
    if finish == "length" or reply.cut_off:
        spent = f", {reasoning_tokens} of them reasoning" if reasoning_tokens else \
            (" spent thinking" if reply.reasoning else "")
        size = f"{limit} tokens" if limit else "its tokens"
        raise OutputLimitReached(
            f"the reply was cut off by the output limit ({size}{spent}) before any answer: "
            "lower --reasoning-effort (the limit is the answer's room plus the effort's "
            "reasoning allowance) or use a model that thinks less")
    raise EmptyReply("the reply has no text")


def result_from(resp, litellm, model: str, api_bases: Sequence[str] = (),
                costs: CostRates | None = None, limit: int | None = None) -> LLMResult:
    """A litellm response as an :class:`LLMResult`: text, usage, cost (0 for the local
    model), the server that answered.  Raises :class:`EmptyReply` for a reply without text.
    Usage that is missing or implausible (:func:`~re2llm_tui.llm.replies.usage_of`) marks
    the result ``usage_estimated`` (the transport counts it from the request); a cost that
    is NaN, infinite or negative is counted from the tokens and litellm's rates instead."""
    try:
        message = resp.choices[0].message
        content = message.content
    except (AttributeError, IndexError, TypeError):
        message = content = None
    try:
        finish = resp.choices[0].finish_reason
    except (AttributeError, IndexError, TypeError):
        finish = None
    text = reply_text(content)
    from re2llm_tui.llm.thinking import reasoning_of, split_reply

    reply = split_reply(text, reasoning_of(message))
    rt = reasoning_tokens_of(getattr(resp, "usage", None))
    check_answer(reply, finish, rt, limit)
    text = reply.answer
    hidden = getattr(resp, "_hidden_params", {}) or {}
    api_base = safe_base(hidden.get("api_base") or (api_bases[0] if api_bases else None))
    usage = usage_of(getattr(resp, "usage", None))
    if usage is None:
        return LLMResult(text=text, model=model, api_base=api_base, usage_estimated=True,
                         reasoning=reply.reasoning, finish_reason=finish)
    pt, ct, cached_tokens = usage
    cost = 0.0
    if not is_local_model(model):
        cost = hidden.get("response_cost")
        if cost is None and "response_cost" not in hidden:
            # litellm priced it already when the key is there (None: not in its tables)
            try:
                cost = litellm.completion_cost(completion_response=resp)
            except Exception:  # noqa: BLE001 - model not in the cost tables
                cost = 0.0
        cost = finite_cost(cost or 0.0)
        if cost is None:
            cost = (costs or CostRates()).cost(model, pt, ct, cached_tokens)
    return LLMResult(text=text, cost=float(cost or 0.0), prompt_tokens=pt,
                     completion_tokens=ct, model=model, api_base=api_base,
                     cached_tokens=cached_tokens, reasoning=reply.reasoning,
                     reasoning_tokens=min(rt, ct), finish_reason=finish)
