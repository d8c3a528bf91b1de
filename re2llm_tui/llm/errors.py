"""What can go wrong with an LLM call, and which failures are worth another attempt.

* :class:`BudgetExceeded`: ``--max-calls``/``--max-cost`` reached (the run stops, resumable).
* :class:`AuthFailed`: the provider refused the credentials (the run stops with one line).
* :class:`EmptyReply`: a reply without text (retried, never cached as a success).
* a reply past ``--max-reply-bytes`` or whose content is not text
  (:mod:`~re2llm_tui.llm.replies`): a failed call, not retried.
* :func:`is_retryable` / :func:`is_auth_error`: classify a provider's exception by its class
  names (litellm's exception hierarchy) or its HTTP status.
"""

from __future__ import annotations

import asyncio

from re2llm_tui.control import RunStop
from re2llm_tui.errors import UserError


class BudgetExceeded(RunStop):
    """``max_cost`` or ``max_calls`` was reached; nothing was sent for this call."""

    exit_code = 3


class AuthFailed(UserError):
    """The provider refused the credentials (401/403): every further call would fail too,
    so the run stops at once with this one line instead of logging a failure per call."""


class EmptyReply(Exception):
    """The provider answered without any text (retried; never cached as a success)."""


#: litellm exception class names that are worth retrying
_RETRYABLE = {
    "RateLimitError", "Timeout", "APIConnectionError", "InternalServerError",
    "ServiceUnavailableError", "BadGatewayError", "APIResponseValidationError",
    "JSONDecodeError", "TimeoutError", "ReadTimeout", "ConnectTimeout", "EmptyReply",
}
_AUTH = {"AuthenticationError", "PermissionDeniedError"}
_FATAL = {"AuthenticationError", "PermissionDeniedError", "NotFoundError", "BadRequestError",
          "ContextWindowExceededError", "ContentPolicyViolationError", "UnsupportedParamsError",
          "BudgetExceededError", "ReplyTooLarge", "UnusableReply"}


def is_retryable(exc: BaseException) -> bool:
    """Rate limits, timeouts, connection errors, 5xx and unparseable replies."""
    names = {c.__name__ for c in type(exc).__mro__}
    if names & _FATAL:
        return False
    if names & _RETRYABLE or isinstance(exc, (asyncio.TimeoutError, ConnectionError)):
        return True
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        # a 2xx that raised: the body was no chat completion (litellm's hosted_vllm says
        # APIError with status 200 where its openai provider says InternalServerError)
        return status == 429 or status >= 500 or 200 <= status < 300
    # litellm wraps an unparseable body in a generic APIError without a status
    return "APIError" in names


def is_auth_error(exc: BaseException) -> bool:
    """A refused credential: litellm's AuthenticationError/PermissionDeniedError, or 401/403."""
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(names & _AUTH) or getattr(exc, "status_code", None) in (401, 403)


def error_line(exc: BaseException) -> str:
    """``ClassName: message`` on one line, at most ~300 characters (stored with the call)."""
    msg = " ".join(str(exc).split())
    if len(msg) > 300:
        msg = msg[:297] + "..."
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def retry_after(exc: BaseException, cap: float | None = 60.0) -> float | None:
    """A server's ``Retry-After`` in seconds (at most ``cap``; ``cap=None``: as sent), when
    the exception carries the response."""
    resp = getattr(exc, "response", None)
    headers = getattr(resp, "headers", None)
    if not headers:
        return None
    try:
        value = headers.get("retry-after")
        if value is None:
            return None
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    if seconds != seconds:                   # NaN
        return None
    return seconds if cap is None else min(seconds, cap)
