"""What a job control needs from the app (:class:`Host`), and its background threads."""

from __future__ import annotations

import threading
from typing import Any, Callable, Protocol

from re2llm_tui.tui.config import AppConfig, error_line

#: seconds between two looks at a job process by its watcher thread
WATCH_S = 0.1
#: how long quit and stop wait for a job to save its checkpoint before ending it
STOP_WAIT_S = 2.0


class Host(Protocol):
    """The app as the controls see it (:class:`~re2llm_tui.tui.app.Re2LLMApp` is one).

    ``post_message`` may be called from any thread; ``call_from_thread`` runs a callable on
    the UI thread (the thread that handles the posted messages); the controls change their
    state only there."""

    config: AppConfig
    #: the UI thread's workspace connection
    db: Any

    def post_message(self, message: Any) -> bool: ...

    def notify(self, message: str, *, title: str = "", severity: str = "information",
               timeout: float | None = None) -> None: ...

    def call_from_thread(self, callback: Callable, *args: Any) -> Any: ...

    def open_db(self): ...

    def kb(self, db=None): ...

    def llm(self): ...


#: the process states in which a watched job is not over yet
LIVE_STATES = ("starting", "running", "pausing", "paused", "stopping")


class JobControl:
    """What the job controls share: the host, the optional cost preflight, the handle of
    the job process (one at a time), its state, and the watcher threads' end."""

    def __init__(self, host: Host, preflight=None) -> None:
        self.host = host
        self.preflight = preflight
        self.handle = None
        self.state = "idle"
        self._ended = threading.Event()

    @property
    def config(self) -> AppConfig:
        return self.host.config

    def is_running(self) -> bool:
        return self.handle is not None and self.handle.is_alive()

    def close(self) -> None:
        """The app is going: watcher threads end (the process is ended by the app's quit)."""
        self._ended.set()

    def watch(self, handle, name: str) -> None:
        """Watch ``handle`` in a daemon thread (:meth:`_watch`)."""
        threading.Thread(target=self._watch, args=(handle,), daemon=True,
                         name=f"re2llm-{name}-watch").start()

    def _watch(self, handle) -> None:  # pragma: no cover - each control has its own
        raise NotImplementedError


def on_ui(host: Host, fn: Callable, *args: Any) -> None:
    """Run ``fn(*args)`` on the host's UI thread; nothing when the app has gone."""
    try:
        host.call_from_thread(fn, *args)
    except RuntimeError:            # the app is not running any more
        pass


def background(host: Host, fn: Callable, *args: Any, name: str, title: str) -> threading.Thread:
    """Run ``fn(*args)`` in a daemon thread; a failure becomes an error notification titled
    ``title`` (never a traceback, never a dead app)."""

    def target() -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - shown to the user, the app goes on
            on_ui(host, lambda: host.notify(error_line(exc), title=title, severity="error",
                                            timeout=12))

    thread = threading.Thread(target=target, name=f"re2llm-{name}", daemon=True)
    thread.start()
    return thread
