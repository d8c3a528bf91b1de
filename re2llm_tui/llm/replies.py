"""What a server's reply may hold, checked in one place for both transports.

A server is not trusted to be well-behaved.  Its reply is read with a size cap, its text
comes from a string content or OpenAI-style text parts, and its token counts are used only
when they are plausible:

* :func:`read_capped` / :func:`read_capped_aiohttp`: a body (httpx or aiohttp) read
  incrementally, :class:`ReplyTooLarge` past ``--max-reply-bytes`` (default 4 MiB,
  ``$RE2LLM_MAX_REPLY_BYTES``): an endless chunked body costs at most the cap in memory.
* :func:`reply_text`: a string, or a list of text parts joined as litellm joins them
  (``convert_content_list_to_str``: the parts' ``text`` concatenated); an object, a number or
  a list without text is an :class:`UnusableReply` (a failed call, not retried).
* :func:`checked_usage`: token counts that are non-negative integers below
  :data:`MAX_TOKEN_COUNT` (a bool, a float with a fraction, NaN, a string, a negative or a
  huge number is not); otherwise ``None``: the client then counts the call's tokens from its
  own request and its ``max_tokens`` (an upper bound) and marks it ``usage_estimated``.
* :func:`finite_cost`: a cost that is a finite, non-negative number, else ``None``.

The fast path calls these directly.  litellm parses a reply itself (and refuses list
content, float usage and 1e30 with "Invalid response object"), so on the litellm path the
same checks run beneath it, in an ``httpx`` transport wrapped around the one litellm builds
(:func:`guard_litellm`): while a :class:`ReplyGuard` is set for the call (a context
variable), the wrapper sends the URL's Basic credentials, reads the body with the cap and
hands litellm a cleaned OpenAI reply (text parts joined, invalid usage dropped), noting what
it found on the guard.  Without a guard (any other use of litellm) it passes through.
"""

from __future__ import annotations

import base64
import contextvars
import json
import math
import os
import threading
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from re2llm_tui.errors import UserError

#: a token count above this is not believed (no context window is 10M tokens)
MAX_TOKEN_COUNT = 10_000_000
#: ``--max-reply-bytes`` when not given
DEFAULT_MAX_REPLY_BYTES = 4 << 20
MAX_REPLY_BYTES_ENV = "RE2LLM_MAX_REPLY_BYTES"
#: the smallest cap accepted (a chat completion's envelope alone is ~300 bytes)
MIN_REPLY_BYTES = 1024


class ReplyTooLarge(Exception):
    """A reply body past ``--max-reply-bytes``: the call fails (not retried)."""


class UnusableReply(Exception):
    """A reply whose content is not text (an object, a number, parts without text): the call
    fails (not retried: the same request would get the same reply)."""


# ------------------------------------------------------------------ the cap

def human_bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{n} bytes"


def too_large(cap: int) -> ReplyTooLarge:
    return ReplyTooLarge(f"reply larger than {human_bytes(cap)} (--max-reply-bytes)")


def check_max_reply_bytes(value) -> int:
    """``--max-reply-bytes`` (or ``$RE2LLM_MAX_REPLY_BYTES``, else 4 MiB) as an int;
    one-line :class:`UserError` when it is not a whole number of at least 1024."""
    if value is None:
        value = os.environ.get(MAX_REPLY_BYTES_ENV) or DEFAULT_MAX_REPLY_BYTES
    try:
        n = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        n = None
    if isinstance(value, bool) or n is None or n < MIN_REPLY_BYTES:
        raise UserError(f"--max-reply-bytes must be a whole number of bytes >= "
                        f"{MIN_REPLY_BYTES} (got {value!r})")
    return n


def use_max_reply_bytes(value) -> int:
    """A command's ``--max-reply-bytes``: checked, and made this process's
    ``$RE2LLM_MAX_REPLY_BYTES`` so that the processes it spawns read replies alike."""
    n = check_max_reply_bytes(value)
    if value is not None:
        os.environ[MAX_REPLY_BYTES_ENV] = str(n)
    return n


def _declared_length(headers) -> int | None:
    try:
        v = headers.get("content-length")
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


async def read_capped_aiohttp(resp, cap: int) -> bytes:
    """An aiohttp response's body, at most ``cap`` bytes (else :class:`ReplyTooLarge`)."""
    n = _declared_length(resp.headers)
    if n is not None and n > cap:
        raise too_large(cap)
    parts, size = [], 0
    while True:
        chunk = await resp.content.read(65536)
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > cap:
            raise too_large(cap)
        parts.append(chunk)


async def read_capped(stream, headers, cap: int) -> bytes:
    """An httpx response stream's body, at most ``cap`` bytes (else :class:`ReplyTooLarge`)."""
    n = _declared_length(headers)
    if n is not None and n > cap:
        raise too_large(cap)
    parts, size = [], 0
    async for chunk in stream:
        size += len(chunk)
        if size > cap:
            raise too_large(cap)
        parts.append(chunk)
    return b"".join(parts)


# ------------------------------------------------------------------ text and usage

def reply_text(content) -> str | None:
    """A message's ``content`` as text: a string as is, ``None`` as ``None`` (an empty
    reply), a list of parts as the concatenation of their ``text`` (litellm's
    ``convert_content_list_to_str``); anything else raises :class:`UnusableReply`."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict):
                raise UnusableReply(f"the reply's content is a list holding a "
                                    f"{_kind(part)}, not text parts")
            text = part.get("text")
            if isinstance(text, str):
                texts.append(text)
        if not texts:
            kinds = sorted({str(p.get("type") or "untyped") for p in content})[:4]
            raise UnusableReply("the reply's content is a list without text parts"
                                + (f" ({', '.join(kinds)})" if kinds else ""))
        return "".join(texts)
    raise UnusableReply(f"the reply's content is {_kind(content, article=True)}, not text")


def _kind(value, article: bool = False) -> str:
    name = {dict: "object", list: "list", bool: "boolean", int: "number",
            float: "number"}.get(type(value), type(value).__name__)
    if not article:
        return name
    return ("an " if name[0] in "aeiou" else "a ") + name


def token_count(value) -> int | None:
    """A token count from a server: a non-negative integer below :data:`MAX_TOKEN_COUNT`
    (an integral float such as ``12.0`` counts), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not value.is_integer():          # also NaN and +-inf
            return None
        value = int(value)
    if not isinstance(value, int):
        return None
    return value if 0 <= value < MAX_TOKEN_COUNT else None


def checked_usage(prompt, completion, cached=None) -> tuple[int, int, int] | None:
    """``(prompt, completion, cached)`` tokens when every count is plausible (cached:
    absent means 0, and it never exceeds the prompt), else ``None``."""
    pt, ct = token_count(prompt), token_count(completion)
    if pt is None or ct is None:
        return None
    if cached is None:
        return pt, ct, 0
    c = token_count(cached)
    if c is None:
        return None
    return pt, ct, min(c, pt)


def usage_of(usage) -> tuple[int, int, int] | None:
    """:func:`checked_usage` of an OpenAI ``usage`` object (a dict, or litellm's Usage)."""
    if usage is None:
        return None
    get = usage.get if isinstance(usage, dict) else (lambda k: getattr(usage, k, None))
    details = get("prompt_tokens_details")
    if isinstance(details, dict):
        cached = details.get("cached_tokens")
    else:
        cached = getattr(details, "cached_tokens", None)
    return checked_usage(get("prompt_tokens"), get("completion_tokens"), cached)


def finite_cost(value) -> float | None:
    """A cost that is a finite number >= 0, else ``None``."""
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return v if math.isfinite(v) and v >= 0 else None


# ------------------------------------------------------------------ credentials in the URL

def split_credentials(url: str) -> tuple[str, str | None]:
    """``(url without user info, "Basic ..." header or None)`` for an ``--api-base`` like
    ``http://user:pw@host/v1`` (percent-escapes in the user info are decoded)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    return bare, "Basic " + base64.b64encode(pair.encode()).decode()


# ------------------------------------------------------------------ beneath litellm

@dataclass
class ReplyGuard:
    """One litellm call's limits (``max_bytes``, ``auth``: the Authorization header to send
    instead of litellm's, ``openai``: the reply is an OpenAI chat completion to clean) and
    what the transport found (``error``, ``usage_invalid``)."""

    max_bytes: int
    auth: str | None = None
    openai: bool = False
    error: Exception | None = None
    usage_invalid: bool = False

    def clean(self, body: bytes) -> bytes | None:
        """An OpenAI reply litellm can parse (text parts joined, invalid usage dropped), or
        ``None`` to pass ``body`` on unchanged (not JSON, no choices: litellm's to judge)."""
        try:
            data = json.loads(body)
            message = data["choices"][0]["message"]
            content = message.get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return None
        changed = False
        try:
            text = reply_text(content)
        except UnusableReply as exc:
            self.error = exc                 # the client raises it in our words
            message["content"] = None        # (litellm would refuse it with a traceback)
            return json.dumps(data).encode()
        if text is not content:
            message["content"] = text
            changed = True
        if usage_of(data.get("usage")) is None:
            self.usage_invalid = True
            if "usage" in data:
                data.pop("usage")
                changed = True
        return json.dumps(data).encode() if changed else None


_GUARD: contextvars.ContextVar[ReplyGuard | None] = contextvars.ContextVar(
    "re2llm_reply_guard", default=None)


def set_guard(guard: ReplyGuard | None):
    return _GUARD.set(guard)


def reset_guard(token) -> None:
    _GUARD.reset(token)


def _guarded_transport_class():
    import httpx

    class GuardedTransport(httpx.AsyncBaseTransport):
        """litellm's transport with the call's :class:`ReplyGuard` applied."""

        def __init__(self, inner) -> None:
            self.inner = inner

        async def handle_async_request(self, request):
            guard = _GUARD.get()
            if guard is None:
                return await self.inner.handle_async_request(request)
            if guard.auth:
                request.headers["Authorization"] = guard.auth
            resp = await self.inner.handle_async_request(request)
            try:
                body = await read_capped(resp.stream, resp.headers, guard.max_bytes)
            except ReplyTooLarge as exc:
                guard.error = exc
                raise
            finally:
                await resp.aclose()
            headers = resp.headers
            if guard.openai and resp.status_code == 200:
                cleaned = guard.clean(body)
                if cleaned is not None:
                    body = cleaned
                    headers = httpx.Headers([(k, v) for k, v in resp.headers.items()
                                             if k.lower() not in ("content-length",
                                                                  "content-encoding",
                                                                  "transfer-encoding")])
                    headers["content-length"] = str(len(body))
            return httpx.Response(resp.status_code, headers=headers, content=body,
                                  request=request, extensions=resp.extensions)

        async def aclose(self) -> None:
            await self.inner.aclose()

    return GuardedTransport


_installed = False
_install_lock = threading.Lock()


def guard_litellm() -> None:
    """Wrap the async transports litellm builds (``AsyncHTTPHandler.create_async_transport``,
    used by its OpenAI SDK clients and its own HTTP handler) in the guarded transport, once
    per process, and drop litellm's cached clients built before."""
    if _installed:
        return
    with _install_lock:
        if not _installed:
            _install()


def _install() -> None:
    global _installed
    from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

    guarded = _guarded_transport_class()
    original = AsyncHTTPHandler.create_async_transport

    def create_async_transport(*args, **kwargs):
        inner = original(*args, **kwargs)
        return inner if inner is None else guarded(inner)

    AsyncHTTPHandler.create_async_transport = staticmethod(create_async_transport)
    if hasattr(AsyncHTTPHandler, "_create_async_transport"):
        AsyncHTTPHandler._create_async_transport = staticmethod(create_async_transport)
    try:
        import litellm

        cache = getattr(litellm, "in_memory_llm_clients_cache", None)
        if cache is not None and hasattr(cache, "flush_cache"):
            cache.flush_cache()
    except Exception:  # noqa: BLE001 - an older litellm: clients built later are guarded
        pass
    _installed = True
