"""Send one request with retries: exponential backoff with jitter, or the server's
``Retry-After``; a stop ends every wait at once and a pause holds its clock.  A
``Retry-After`` above :data:`MAX_RETRY_AFTER_S` fails the call with the reason instead of
waiting for hours (999999 s was seen).

Retryable failures (:func:`~re2llm_tui.llm.errors.is_retryable`) are retried
``max_retries`` times; a refused credential raises :class:`~re2llm_tui.llm.errors.AuthFailed`
at once, and so does a request the provider refuses as invalid
(:class:`~re2llm_tui.llm.errors.InvalidRequest`); any other failure ends the loop, and the caller records the call as failed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from re2llm_tui.control import RunStop, StopRequested
from re2llm_tui.llm.errors import (
    AuthFailed,
    InvalidRequest,
    error_line,
    invalid_request_line,
    is_auth_error,
    is_invalid_request,
    is_retryable,
    retry_after,
)


#: seconds of ``Retry-After`` a call waits at most; longer, the call fails with the reason
MAX_RETRY_AFTER_S = 60.0


class RetryAfterTooLong(Exception):
    """The server asked to retry after longer than :attr:`RetryPolicy.max_retry_after`."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait: attempt ``n`` (1-based) failed -> sleep a uniform
    draw in ``[d/2, d]`` with ``d = min(cap, base * 2**(n-1))``, or ``Retry-After``."""

    max_retries: int = 4
    base: float = 0.5
    cap: float = 20.0
    #: the longest ``Retry-After`` waited out; a server asking for more fails the call
    max_retry_after: float = MAX_RETRY_AFTER_S

    def delay(self, attempt: int, exc: BaseException) -> float:
        server = retry_after(exc, cap=None)
        if server is not None:
            return max(server, 0.0)
        d = min(self.cap, self.base * (2 ** (attempt - 1)))
        return random.uniform(0.5 * d, d)


@dataclass
class Outcome:
    """What :func:`send_with_retries` ends with: ``result`` or the ``error`` that ended it."""

    result: Any = None
    error: BaseException | None = None
    attempts: int = 0


async def send_with_retries(send: Callable[[], Awaitable[Any]], policy: RetryPolicy, control,
                            *, model: str,
                            answer: Callable[[], Awaitable[None]] | None = None) -> Outcome:
    """Await ``send()`` until it succeeds, fails for good, or the retries are spent.

    ``control`` is the run's :class:`~re2llm_tui.control.Control`: a stop asked while a
    request ran raises :class:`StopRequested`; a pause waits before the next attempt
    (``answer``: what answers pause and stop in the waits between attempts, see
    :meth:`~re2llm_tui.control.Control.asleep`; whatever it raises propagates).
    Cancellation, :class:`KeyboardInterrupt` and :class:`RunStop` propagate unchanged.
    """
    attempts = 0
    while True:
        attempts += 1
        try:
            result = await send()
        except (asyncio.CancelledError, KeyboardInterrupt, RunStop):
            raise
        except Exception as exc:  # noqa: BLE001 - every provider error is handled here
            if control.stopped:
                # the local engine was interrupted mid-call (litellm may wrap it)
                raise StopRequested(control.reason) from None
            if is_auth_error(exc):
                raise AuthFailed(
                    f"{model}: the provider refused the credentials ({error_line(exc)}); "
                    "check the API key in the environment (or the --api-base URL) and rerun: "
                    "finished work is saved") from None
            if is_invalid_request(exc):
                # every further request would be refused too: the run stops here
                raise InvalidRequest(invalid_request_line(exc, model)) from None
            if attempts > policy.max_retries or not is_retryable(exc):
                return Outcome(error=exc, attempts=attempts)
            wait = policy.delay(attempts, exc)
            if wait > policy.max_retry_after:
                return Outcome(error=RetryAfterTooLong(
                    f"the server asked to retry after {wait:,.0f} s (Retry-After), more than "
                    f"the {policy.max_retry_after:,.0f} s this client waits; last error: "
                    f"{error_line(exc)}"), attempts=attempts)
            # backoff and Retry-After wake on stop at once; a pause stops their clock
            await control.asleep(wait, answer)
            continue
        return Outcome(result=result, attempts=attempts)
