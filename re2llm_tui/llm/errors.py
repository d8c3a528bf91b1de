"""What can go wrong with an LLM call, and which failures are worth another attempt.

* :class:`BudgetExceeded`: ``--max-calls``/``--max-cost`` reached (the run stops, resumable).
* :class:`AuthFailed`: the provider refused the credentials (the run stops with one line).
* :class:`EmptyReply`: a reply without text (retried, never cached as a success).
* :class:`OutputLimitReached`: the output limit was spent (on reasoning) before any answer:
  a failed call, not retried, whose reason names the flag to change.
* :class:`InvalidRequest`: the provider refused the request itself (an unsupported
  parameter, a 400 ``invalid_request_error``, a 404 unknown model, a context-length error):
  every further call would be refused too, so the run stops at the first one, like a
  refused key (:func:`is_invalid_request`, :func:`invalid_request_line`).
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


class OutputLimitReached(Exception):
    """The reply was cut off by its output limit before any answer (a reasoning model spent
    it thinking): a failed call, not retried (the same request would be cut off again)."""


class InvalidRequest(UserError):
    """The provider refused the request as invalid: the run stops with this one line
    (exit 2), naming the cause and the flag to change."""


#: litellm exception class names that are worth retrying
_RETRYABLE = {
    "RateLimitError", "Timeout", "APIConnectionError", "InternalServerError",
    "ServiceUnavailableError", "BadGatewayError", "APIResponseValidationError",
    "JSONDecodeError", "TimeoutError", "ReadTimeout", "ConnectTimeout", "EmptyReply",
}
_AUTH = {"AuthenticationError", "PermissionDeniedError"}
_FATAL = {"AuthenticationError", "PermissionDeniedError", "NotFoundError", "BadRequestError",
          "ContextWindowExceededError", "ContentPolicyViolationError", "UnsupportedParamsError",
          "BudgetExceededError", "ReplyTooLarge", "UnusableReply", "OutputLimitReached"}
#: litellm / fast-path exception names of a request the provider refuses as invalid
_INVALID = {"BadRequestError", "NotFoundError", "ContextWindowExceededError",
            "UnsupportedParamsError", "UnprocessableEntityError"}


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


def is_invalid_request(exc: BaseException) -> bool:
    """A request the provider refuses as invalid (400 / 404 / 422, an unsupported parameter,
    a context-length error) -- not a content-policy refusal, which concerns one prompt."""
    names = {c.__name__ for c in type(exc).__mro__}
    if "ContentPolicyViolationError" in names:
        return False
    return bool(names & _INVALID) or getattr(exc, "status_code", None) in (400, 404, 422)


def invalid_request_line(exc: BaseException, model: str) -> str:
    """The one line that stops a run on an invalid request: the provider's reason, and what
    to change."""
    from re2llm_tui.llm.outcomes import short_error

    reason = short_error(error_line(exc))
    low = " ".join(str(exc).split()).lower()
    names = {c.__name__ for c in type(exc).__mro__}
    if "temperature" in low:
        fix = ("the model takes no temperature 0: declare it with --no-temperature "
               "(remembered for this model in the workspace)")
    elif "max_tokens" in low and "max_completion_tokens" in low:
        fix = ("the model wants max_completion_tokens: declare it a reasoning model with "
               "--reasoning")
    elif "reasoning_effort" in low or "thinking" in low:
        fix = "change or drop --reasoning-effort"
    elif "ContextWindowExceededError" in names or "context" in low and (
            "length" in low or "window" in low):
        fix = ("the prompt is longer than the model's context: use a model with a larger "
               "context or shorter sessions")
    elif "NotFoundError" in names or getattr(exc, "status_code", None) == 404:
        fix = "check --model (and --api-base): the server does not serve it"
    else:
        fix = "check --model, --api-base and the decoding flags (--reasoning-effort, " \
              "--reasoning, --no-temperature)"
    return (f"{model}: the provider refused the request as invalid ({reason}); {fix}; "
            "finished work is saved")


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
