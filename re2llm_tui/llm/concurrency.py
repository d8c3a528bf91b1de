"""Bounded concurrency per event loop, and one call for identical requests in flight.

Both are bound to the running event loop: the sync bridge runs calls on its own loop and an
async caller (the TUI, ``recommend_async``) on another, so each loop gets its own semaphore
and its own table of in-flight requests.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import Any


class Slot:
    """``async with`` one slot of a semaphore; the wait for a free slot ends at once with
    :class:`~re2llm_tui.control.StopRequested` when this process's job is stopped (a call
    queued behind slow or retrying calls never waits them out)."""

    def __init__(self, sem: asyncio.Semaphore) -> None:
        self.sem = sem

    async def __aenter__(self) -> asyncio.Semaphore:
        from re2llm_tui.control import current

        if not self.sem.locked():
            await self.sem.acquire()          # free: no waiting, nothing to race
        else:
            await current().until_stopped(self.sem.acquire())
        return self.sem

    async def __aexit__(self, *exc) -> None:
        self.sem.release()


class LoopSemaphores:
    """One :class:`asyncio.Semaphore` of ``limit`` slots per running event loop;
    :meth:`get` hands out a stop-aware :class:`Slot` of it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._sems: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # loop -> sem

    def semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        sem = self._sems.get(loop)
        if sem is None:
            sem = self._sems[loop] = asyncio.Semaphore(self.limit)
        return sem

    def get(self) -> Slot:
        """``async with sems.get():`` -- one slot of this loop's semaphore (stop-aware)."""
        return Slot(self.semaphore())

    def clear(self) -> None:
        self._sems.clear()


class InFlight:
    """Identical requests (same key, same loop) share one call: the first one leads, the
    others wait for its outcome (:meth:`pending`)."""

    def __init__(self) -> None:
        self._futures: dict[tuple[int, str], asyncio.Future] = {}

    def pending(self, key: str) -> asyncio.Future | None:
        """The future of the call for ``key`` running on this loop, if any."""
        return self._futures.get((id(asyncio.get_running_loop()), key))

    async def lead(self, key: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``call()`` as the call for ``key``; those waiting get its result or error."""
        loop = asyncio.get_running_loop()
        fkey = (id(loop), key)
        fut = loop.create_future()
        self._futures[fkey] = fut
        try:
            res = await call()
            fut.set_result(res)
            return res
        except BaseException as exc:
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # mark retrieved
            raise
        finally:
            self._futures.pop(fkey, None)

    def clear(self) -> None:
        self._futures.clear()
