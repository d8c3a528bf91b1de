"""Run coroutines from synchronous code on one private event-loop thread.

The loop lives as long as its owner (an :class:`~re2llm_tui.llm.client.LLMClient`): calls
made one after another reuse its connections, semaphore and in-flight table.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any


class LoopThread:
    """A daemon thread running an event loop, started by the first :meth:`run`."""

    def __init__(self, name: str = "re2llm-llm-loop") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._loop is not None

    def run(self, coro: Coroutine) -> Any:
        """Run ``coro`` on the thread's loop and return its result (or raise its error).

        Raises :class:`RuntimeError` when called from a running event loop (await the
        coroutine there instead), and :class:`KeyboardInterrupt` when the loop cancelled it
        (the owner was closed meanwhile).
        """
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
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name=self.name, daemon=True)
                self._thread.start()
            loop = self._loop
        fut = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return fut.result()
        except concurrent.futures.CancelledError:
            raise KeyboardInterrupt from None

    def close(self) -> None:
        """Cancel what still runs, stop the loop, and join the thread (up to 5 s)."""
        if self._loop is None:
            return
        loop = self._loop

        def _stop():
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.call_soon(loop.stop)

        loop.call_soon_threadsafe(_stop)
        if self._thread:
            self._thread.join(timeout=5)
            if not self._thread.is_alive():
                loop.close()
        self._loop = None
