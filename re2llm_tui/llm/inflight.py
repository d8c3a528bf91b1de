"""One request in flight per workspace: a process that needs a reply another process on the
same workspace is already paying for waits for that reply instead of sending it again.

The ``inflight`` table holds one short row per cache key being sent: ``(key, pid,
started_at)``.  A request whose key is not in the cache goes through :meth:`Claims.send_once`:

* Just before it is sent -- inside the caller's concurrency slot, so that a claim means "being
  sent now" -- :meth:`Claim.take` looks the key up in the cache and inserts the claim in one
  short ``BEGIN IMMEDIATE`` transaction (never held across an ``await``).  A reply found
  there is served as a cache hit; a claim won is sent.
* The reply (or the failure) is stored and the claim deleted in one transaction
  (:meth:`~re2llm_tui.llm.cache.CallLog.record`); a stop, a budget refusal or a cancellation
  deletes it too (``finally``).
* A claim held by another live process: the request gives its slot back and waits
  (:meth:`Claim.wait`), looking every :data:`POLL_S` seconds -- and answering pause and stop
  between looks -- until the reply is in the cache (served as a hit) or the claim is gone
  without one (the other failed or stopped: claim and send it here).
* A claim whose process is gone (SIGKILL, a crash), or older than ``stale_s`` (generously
  more than a request with all its retries can take), is stale and taken over.
* A pause holds no claim of a request waiting to be sent: it is answered before the claim is
  taken, and a request paused between two attempts (a backoff, a ``Retry-After``) gives its
  claim back for the whole pause (:meth:`Claim.answer_pause`), so another process needing
  the reply sends it instead of waiting for the pause to end; resumed, the request takes its
  claim again, or serves the reply the other one stored (or waits on its claim).  A reply
  that arrived is stored at once, never after a pause.  (The local engine, paused between
  two tokens of a reply it is computing, keeps that request's claim.)

Claims are per process: a process never waits on itself.  Two clients (or event loops) of one
process asking the same key at once both send, as before; identical requests on one loop
already share one call (:class:`~re2llm_tui.llm.concurrency.InFlight`).  A holder only ever
waits on the network, never on a claim, so processes waiting on each other's claims (client
processes, reward workers and their parent, two workbenches) cannot deadlock.
"""

from __future__ import annotations

import asyncio
import collections
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from re2llm_tui.control import current as current_control
from re2llm_tui.control import pid_alive

#: seconds between two looks at a claim another process holds
POLL_S = 0.15

# (workspace, key) -> how many claims this process holds on it (over all its clients)
_held_lock = threading.Lock()
_held: collections.Counter = collections.Counter()


class ClaimYielded(Exception):
    """A request paused between two attempts gave its claim back, and after the pause another
    process has stored the reply or is sending it: the request waits for that reply."""


def stale_after(timeout: float, max_retries: int, retry_cap: float) -> float:
    """Seconds after which a claim of a live process counts as abandoned: every attempt
    timing out, every backoff at its cap, and a minute more."""
    tries = max(0, int(max_retries)) + 1
    return float(timeout) * tries + float(retry_cap) * (tries - 1) + 60.0


class Claims:
    """The claims of one client on its workspace (``calls``: its
    :class:`~re2llm_tui.llm.cache.CallLog`).  ``enabled=False`` (no cache) claims nothing."""

    def __init__(self, calls, stale_s: float, *, enabled: bool = True,
                 poll_s: float = POLL_S) -> None:
        self.calls = calls
        self.stale_s = float(stale_s)
        self.enabled = enabled
        self.poll_s = poll_s
        self._workspace: str | None = None
        self._owned: set[str] = set()
        self._lock = threading.Lock()
        self._swept = False

    @property
    def workspace(self) -> str:
        if self._workspace is None:
            from re2llm_tui.store.workspace import workspace_path

            self._workspace = os.path.realpath(workspace_path(self.calls.db_path))
        return self._workspace

    async def send_once(self, key: str, send: Callable[["Claim"], Awaitable[Any]],
                        serve_hit: Callable[[dict], Any]) -> Any:
        """``send(claim)`` -- which calls :meth:`Claim.take` just before sending and returns
        None when it must not send -- until it sends, or ``serve_hit(row)`` for the reply
        another process paid for."""
        claim = Claim(self, key)
        try:
            while True:
                res = await send(claim)
                if res is not None:
                    return res
                hit = await claim.wait()
                if hit is not None:
                    return serve_hit(hit)
        finally:
            claim.release()

    def release_all(self) -> None:
        """Delete every claim this client still holds (closing)."""
        with self._lock:
            keys = list(self._owned)
        for key in keys:
            if self._forget(key):
                self._delete(key)

    def sweep(self) -> None:
        """Delete the claims of processes that are gone (a SIGKILL, a crash): once per client,
        before its first claim.  A claim nobody asks for again would otherwise stay."""
        self._swept = True
        db = self.calls.db()
        me = os.getpid()
        dead = [pid for (pid,) in db.execute("SELECT DISTINCT pid FROM inflight")
                if pid != me and not pid_alive(pid)]
        for pid in dead:
            db.execute("DELETE FROM inflight WHERE pid=?", [pid])

    # ----------------------------------------------------------------- internals
    def _own(self, key: str) -> None:
        with self._lock:
            self._owned.add(key)
        with _held_lock:
            _held[(self.workspace, key)] += 1

    def _forget(self, key: str) -> bool:
        """This client no longer holds ``key``; False if it did not (already released)."""
        with self._lock:
            if key not in self._owned:
                return False
            self._owned.discard(key)
        with _held_lock:
            k = (self.workspace, key)
            _held[k] -= 1
            if _held[k] <= 0:
                del _held[k]
        return True

    def _held_here(self, key: str) -> bool:
        with _held_lock:
            return _held[(self.workspace, key)] > 0

    def _delete(self, key: str) -> None:
        try:
            self.calls.db().execute("DELETE FROM inflight WHERE key=? AND pid=?",
                                    [key, os.getpid()])
        except Exception:  # noqa: BLE001 - best effort: a claim left behind goes stale
            pass           # with this process (its pid gone, or stale_s)


class Claim:
    """One request's claim on its cache key (see the module docstring)."""

    def __init__(self, claims: Claims, key: str) -> None:
        self.claims = claims
        self.key = key
        self.owned = False          # this request holds the row and must delete it
        self.hit: dict | None = None
        self.holder: tuple[int, float] | None = None

    def take(self) -> bool:
        """Just before sending: True to send (the claim is won, taken over from a stale
        holder, held by this same process, or claims are off); False when the reply is in
        the cache (:attr:`hit`) or another live process is sending it (:attr:`holder`)."""
        from re2llm_tui.store.workspace import transaction

        cl = self.claims
        if not cl.enabled or self.owned:
            return True
        self.hit = self.holder = None
        if not cl._swept:
            cl.sweep()
        db = cl.calls.db()
        me, now = os.getpid(), time.time()
        with transaction(db):
            hit = cl.calls.lookup(self.key)
            if hit is not None:
                self.hit = hit
                return False
            row = db.execute("SELECT pid, started_at FROM inflight WHERE key=?",
                             [self.key]).fetchone()
            if row is None:
                db.execute("INSERT INTO inflight (key, pid, started_at) VALUES (?,?,?)",
                           [self.key, me, now])
            else:
                pid, started = int(row[0]), float(row[1])
                if pid == me and cl._held_here(self.key):
                    return True          # another client of this process: never wait on self
                if pid != me and pid_alive(pid) and now - started <= cl.stale_s:
                    self.holder = (pid, started)
                    return False
                # stale: its process is gone (or it is far too old): take it over
                db.execute("UPDATE inflight SET pid=?, started_at=? WHERE key=? AND pid=? "
                           "AND started_at=?", [me, now, self.key, pid, started])
        self.owned = True
        cl._own(self.key)
        return True

    async def wait(self) -> dict | None:
        """Wait for the reply of the process holding the claim: the cache row once it is
        there, or None once the claim is gone (or stale) without one.  Pause and stop are
        answered between looks."""
        if self.hit is not None:
            return self.hit
        cl = self.claims
        control = current_control()
        while True:
            await asyncio.sleep(cl.poll_s)
            await control.acheck()
            hit = cl.calls.lookup(self.key)
            if hit is not None:
                return hit
            row = cl.calls.db().execute("SELECT pid, started_at FROM inflight WHERE key=?",
                                        [self.key]).fetchone()
            if row is None:
                return None
            pid, started = int(row[0]), float(row[1])
            if pid == os.getpid() or not pid_alive(pid) or \
                    time.time() - started > cl.stale_s:
                return None

    async def answer_pause(self, control) -> None:
        """``control.acheck()`` for a request holding its claim between two attempts: while
        paused the claim is given back; afterwards it is taken again, or
        :class:`ClaimYielded` is raised when another process has the reply or sends it."""
        if not (self.owned and control.paused):
            await control.acheck()
            return
        self.release()
        await control.acheck()          # a stop raises here: the claim is already gone
        if not self.take():
            raise ClaimYielded(self.key)

    def stored(self) -> None:
        """The reply was stored and the row deleted in the same transaction."""
        if self.owned:
            self.owned = False
            self.claims._forget(self.key)

    def release(self) -> None:
        """Delete the claim if this request still holds it (a failure, a stop, closing)."""
        if self.owned:
            self.owned = False
            if self.claims._forget(self.key):
                self.claims._delete(self.key)
