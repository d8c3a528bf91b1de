"""The workbench app and its one factory, :func:`make_app`, used by the CLI and the tests.

Architecture (see ../shared/STYLE.md):

* Screens are Textual *modes* (sessions, review, kb, training, evaluation); session detail and
  reflection are pushed on the sessions stack; help is a modal.
* The main thread has its own workspace connection (:attr:`Re2LLMApp.db`) for reads; every
  worker opens its own (:meth:`Re2LLMApp.open_db`): a SQLite connection works only in the
  thread that made it.  The workspace is in WAL mode, so a CLI job can share it.
* Long work runs in named thread workers that post typed messages (:mod:`.messages`); a
  failure becomes a notification and changes nothing the user did.
* Training and evaluation run in spawned *processes*, started, watched and stopped by the
  plain job controls of :mod:`.controls` (no Textual in them): their watcher threads post
  mergeable :class:`~.messages.TrainingProgress` and the other job messages, which the app
  hands back to the controls on its own thread; charts keep bounded deques and redraw at
  most 4 times a second.
* Screens learn that something changed from one message, :class:`~.messages.WorkspaceChanged`,
  sent to every mounted screen (:meth:`Re2LLMApp.changed`); a hidden screen catches up when
  it is shown again.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Callable

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.worker import Worker, WorkerState

from re2llm_tui.safe_text import clean
from re2llm_tui.store import changes
from re2llm_tui.tui import textual_compat
from re2llm_tui.tui.config import AppConfig, error_line
from re2llm_tui.tui.controls import CostPreflight, EvaluationControl, TrainingControl
from re2llm_tui.runtime.jobs import shutdown_jobs
from re2llm_tui.tui.controls.host import STOP_WAIT_S
from re2llm_tui.tui.messages import (
    CostEstimated,
    EvaluationFinished,
    EvaluationProgress,
    KBChanged,
    PlanProposed,
    RecommendFinished,
    ReflectionFinished,
    TrainingProgress,
    TrainingStateChanged,
    WorkspaceChanged,
)

__all__ = ["AppConfig", "Re2LLMApp", "error_line", "make_app", "run_app", "shutdown_jobs"]

#: seconds between two looks at the workspace's ``PRAGMA data_version`` (other processes'
#: commits: a CLI job, the training process) while the app is idle
DATA_POLL_S = 1.0


class ActionsProvider(Provider):
    """The command palette: every action of the app and of the current screen."""

    def _actions(self):
        return self.app.palette_actions(self.screen)

    async def discover(self) -> Hits:
        for title, help_text, callback in self._actions():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._actions():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)


class Re2LLMApp(textual_compat.UndelayedModeSwitch, App):
    CSS_PATH = "app.tcss"
    TITLE = "re2llm-tui"
    COMMANDS = App.COMMANDS | {ActionsProvider}
    ENABLE_COMMAND_PALETTE = True

    BINDINGS = [
        # shown in the header's second line, not in the footer
        Binding("1", "switch_mode('sessions')", "Sessions", show=False),
        Binding("2", "switch_mode('review')", "Hint review", show=False),
        Binding("3", "switch_mode('kb')", "Knowledge base", show=False),
        Binding("4", "switch_mode('training')", "Training", show=False),
        Binding("5", "switch_mode('evaluation')", "Evaluation", show=False),
        Binding("6", "switch_mode('runs')", "Runs", show=False),
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, config: AppConfig) -> None:
        from re2llm_tui.tui.screens.evaluation import EvaluationScreen
        from re2llm_tui.tui.screens.runs import RunsScreen
        from re2llm_tui.tui.screens.hint_review import HintReviewScreen
        from re2llm_tui.tui.screens.knowledge_base import KnowledgeBaseScreen
        from re2llm_tui.tui.screens.sessions import SessionsScreen
        from re2llm_tui.tui.screens.training import TrainingScreen

        self.MODES = {"sessions": SessionsScreen, "review": HintReviewScreen,
                      "kb": KnowledgeBaseScreen, "training": TrainingScreen,
                      "evaluation": EvaluationScreen, "runs": RunsScreen}
        super().__init__()
        self.config = config
        self._db = None
        self._db_thread: int | None = None
        self._llm = None
        self._llm_lock = threading.Lock()
        #: the job controls (plain classes: :mod:`re2llm_tui.tui.controls`)
        self.preflight = CostPreflight(self)
        self.training = TrainingControl(self, self.preflight)
        self.evaluation = EvaluationControl(self, self.preflight)
        self._quitting = False
        self._data_version: int | None = None
        #: say once, at start, that the embedded demo model is a toy (tests turn it off)
        self.show_demo_notice = True

    # ----------------------------------------------------------------- data access
    @property
    def db(self):
        """The main thread's workspace connection (reads and quick writes in handlers)."""
        if self._db is None or self._db_thread != threading.get_ident():
            self._db = self.open_db()
            self._db_thread = threading.get_ident()
        return self._db

    def open_db(self):
        """A new workspace connection for the calling thread (one per worker)."""
        from re2llm_tui.store.workspace import open_workspace

        return open_workspace(self.config.db_path)

    def sessions(self, split: str | None = None):
        return self.config.ds.sessions(split or self.config.split)

    def session(self, session_id: str):
        return self.config.ds.session(session_id)

    def kb(self, db=None):
        """The knowledge base handle on ``db`` (default: the main thread's connection)."""
        from re2llm_tui.kb import KnowledgeBase

        return KnowledgeBase(self.db if db is None else db, self.config.ds)

    def llm(self):
        """The app's one LLM client (created on first use, in a worker)."""
        with self._llm_lock:
            if self._llm is None:
                from re2llm_tui.llm.client import LLMClient

                self._llm = LLMClient(self.config.db_path, model=self.config.model,
                                      **self.config.llm_options)
            return self._llm

    def header_text(self, screen_title: str):
        from re2llm_tui.tui.widgets.app_header import header_text

        c = self.config
        return header_text(screen_title, c.dataset, c.split, c.model, c.is_demo_model,
                           c.workspace_label, self.current_mode)

    def notify(self, message, *, title: str = "", severity: str = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Every notification shows its text as data: error messages carry paths, hints and
        what the user typed, never markup (a ``[/]`` in them used to kill the app).  Widgets'
        ``notify`` passes ``markup=True`` by default: it is ignored here on purpose."""
        super().notify(clean(message), title=clean(title, oneline=True), severity=severity,
                       timeout=timeout, markup=False)

    # ----------------------------------------------------------------- other processes
    def _read_data_version(self) -> int | None:
        try:
            return changes.data_version(self.db)
        except Exception:  # noqa: BLE001 - a busy or damaged file: try again next tick
            return None

    def _poll_data_version(self) -> None:
        """Another connection committed (a CLI job, a worker, the training process): reload
        the current screen now, the hidden ones when they are shown again.  One cheap pragma
        per second; nothing happens while nothing changes."""
        version = self._read_data_version()
        if version is None or version == self._data_version:
            return
        self._data_version = version
        self.changed("data")
        if not self.training.is_running():
            self.training.refresh_resumable()

    def changed(self, what: str, detail: str = "") -> None:
        """Tell every mounted screen that ``what`` changed (a
        :class:`~.messages.WorkspaceChanged`; see :data:`~.messages.CHANGES`)."""
        for screen in textual_compat.mounted_screens(self):
            screen.post_message(WorkspaceChanged(what, detail))

    # ----------------------------------------------------------------- screens
    def switch_mode(self, mode: str):
        """Textual's switch (without its 50 ms ``delay_update`` when the mode's screen is
        already mounted: :class:`~.textual_compat.UndelayedModeSwitch`)."""
        new = not textual_compat.mode_is_mounted(self, mode)
        try:
            return super().switch_mode(mode)
        finally:
            if new:                           # a new screen: its widgets live long
                self.call_after_refresh(freeze_gc)

    # ----------------------------------------------------------------- lifecycle
    def on_mount(self) -> None:
        from re2llm_tui import control

        # this app's own pause/stop gate: quitting stops the app's in-process LLM work
        control.install(control.Control())
        self.switch_mode("sessions")
        self.call_after_refresh(freeze_gc, True)
        self.training.refresh_resumable()
        self._data_version = self._read_data_version()
        self.set_interval(DATA_POLL_S, self._poll_data_version)
        if self.config.is_demo_model and self.show_demo_notice:
            self.notify("Embedded demo model SmolLM2-135M: rankings are only a little better "
                        "than random. Use --model (e.g. gpt-4o-mini) for real results.",
                        title="demo model", severity="warning", timeout=8)

    def on_unmount(self) -> None:
        import gc

        gc.unfreeze()        # see freeze_gc: this app's objects may be collected again
        from re2llm_tui import control

        control.current().request_stop("the app is quitting")
        self.training.close()
        self.evaluation.close()
        shutdown_jobs(self.jobs())
        if self._llm is not None:
            try:
                self._llm.close()
            except Exception:
                pass

    # ----------------------------------------------------------------- workers
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            err = event.worker.error
            self.notify(error_line(err) if err else "failed", title=event.worker.description
                        or event.worker.name, severity="error", timeout=12)
            self.log.error(f"worker {event.worker.name} failed", err)

    def kb_change(self, fn: Callable, detail: str, *, on_error: Callable | None = None) -> None:
        """Run one KB change ``fn(db) -> (detail, hint_ids)`` in a worker thread."""
        self._kb_worker(fn, detail, on_error)

    @work(thread=True, exclusive=False, exit_on_error=False, group="kb",
          description="KB change")
    def _kb_worker(self, fn: Callable, detail: str, on_error: Callable | None) -> None:
        db = self.open_db()
        try:
            result = fn(db)
        except Exception as exc:
            if on_error is not None:
                self.call_from_thread(on_error, exc)
            raise
        finally:
            db.conn.close()
        if isinstance(result, tuple):
            detail, ids = result
        else:
            ids = []
        self.post_message(KBChanged(detail, ids))

    def on_kbchanged(self, message: KBChanged) -> None:
        self.notify(message.detail, title="knowledge base", timeout=4)
        self.changed("kb", message.detail)

    def recommend(self, session_id: str, hint_id: int | None = None) -> None:
        """Rank one session in a worker: ``hint_id`` None (``r``) or 0 (the picker's "no
        hint", the KB's entry 0) sends no hint; any other id sends that hint."""
        self.notify(f"recommending for {session_id}"
                    + (f" with hint #{hint_id}" if hint_id else " (no hint)") + " …", timeout=3)
        self._recommend_worker(session_id, hint_id)

    @work(thread=True, exclusive=True, exit_on_error=False, group="recommend",
          description="recommend")
    def _recommend_worker(self, session_id: str, hint_id: int | None) -> None:
        from re2llm_tui.evaluation.recommend import recommend

        session = self.session(session_id)
        hint = None
        if hint_id is not None:
            db = self.open_db()
            try:
                hint = self.kb(db).hint_text(hint_id)
            finally:
                db.conn.close()
        out = recommend([session], self.llm(), dataset=self.config.dataset,
                        split=session.split, hint=hint, hint_id=hint_id,
                        samples=self.config.samples)
        rank = out.ranks.get(session_id)
        detail = "" if out.status == "done" else (out.stopped_reason or out.status)
        if out.failed:
            detail = "the LLM call failed (stored as a miss; see the run's error)"
        self.post_message(RecommendFinished(session_id, out.run_id, rank, hint_id, detail))

    def on_recommend_finished(self, message: RecommendFinished) -> None:
        where = f"target at rank {message.rank}" if message.rank else "target not in the list"
        self.notify(f"{message.session_id}: {where} (run #{message.run_id})"
                    + (f" — {message.detail}" if message.detail else ""),
                    title="recommend done", severity="warning" if message.detail else
                    "information", timeout=5)
        self.changed("runs")

    def open_hint(self, hint_id: int) -> None:
        """Show one hint's detail screen (provenance, evidence) over the current screen."""
        from re2llm_tui.tui.screens.hint_detail import HintDetailScreen

        self.push_screen(HintDetailScreen(hint_id))

    def reflect(self, session_id: str) -> None:
        self.notify(f"reflecting on {session_id} …", timeout=3)
        self._reflect_worker(session_id)

    @work(thread=True, exclusive=True, exit_on_error=False, group="reflect",
          description="reflect")
    def _reflect_worker(self, session_id: str) -> None:
        import asyncio

        from re2llm_tui.exploration.reflection import explore
        db = self.open_db()
        try:
            summary = asyncio.run(explore(db, self.llm(), self.config.ds,
                                          session_id=session_id))
        finally:
            db.conn.close()
        outcome = summary.outcomes[0] if summary.outcomes else None
        if summary.stopped:
            detail = f"stopped: {summary.stopped}"
        elif outcome is None:
            detail = "already reflected with this model (see v)"
        elif outcome.status == "hit":
            detail = f"the baseline already hits (rank {outcome.baseline_rank}): nothing to reflect on"
        elif outcome.status == "failed":
            detail = f"failed: {outcome.error}"
        else:
            detail = (f"{summary.proposed} hint(s) proposed, {summary.added} added as candidates "
                      f"({summary.leak} leak, {summary.ineffective} ineffective, "
                      f"{summary.redundant} redundant)")
        rid = outcome.reflection_id if outcome else None
        self.post_message(ReflectionFinished(session_id, rid, detail))

    def on_reflection_finished(self, message: ReflectionFinished) -> None:
        self.notify(f"{message.session_id}: {message.detail}", title="reflection done",
                    timeout=5)
        self.changed("reflections")

    # ----------------------------------------------------------------- jobs
    # The controls (:mod:`.controls`) do the work; the app shows their dialogs, hands their
    # watchers' messages back to them on this thread, and tells the screens.
    def on_plan_proposed(self, message: PlanProposed) -> None:
        from re2llm_tui.tui.widgets.dialogs import ProposalDialog

        plan = message.plan

        def chosen(answer) -> None:
            if answer == "proposed":
                self.training.start(plan=plan)
            elif answer == "full":
                self.training.start()

        self.push_screen(ProposalDialog(plan), chosen)

    def on_cost_estimated(self, message: CostEstimated) -> None:
        from re2llm_tui.tui.screens.cost_confirm import CostConfirmDialog

        command, est, start = message.command, message.estimate, message.start

        def answered(ok: bool | None) -> None:
            if ok:
                start()
            else:
                self.notify(f"{command}: not started", timeout=3)

        title = f"Start {'training' if command == 'train' else 'the evaluation'} with {est.model}?"
        self.push_screen(CostConfirmDialog(title, est), answered)

    def on_training_progress(self, message: TrainingProgress) -> None:
        self.training.apply_progress(message)

    def on_training_state_changed(self, message: TrainingStateChanged) -> None:
        if message.state == "starting":
            freeze_gc()                   # the run's new objects live long (posted by start)
        plan = self.training.apply_state(message)
        if plan is not None and not self._quitting:
            self.evaluation.start(plan=plan)
            self.switch_mode("evaluation")

    def on_evaluation_progress(self, message: EvaluationProgress) -> None:
        self.evaluation.apply_progress(message)
        self.changed("evaluation")

    def on_evaluation_finished(self, message: EvaluationFinished) -> None:
        self.evaluation.apply_finished(message)
        self.changed("evaluation")

    # ----------------------------------------------------------------- quitting
    def jobs(self) -> list:
        return [c.handle for c in (self.training, self.evaluation) if c.is_running()]

    async def action_quit(self) -> None:
        """Quit at once: running jobs are asked to stop (they save their checkpoint within
        a second or two), waited for at most :data:`STOP_WAIT_S`, then ended."""
        if self._quitting:
            return
        self._quitting = True
        from re2llm_tui import control

        control.current().request_stop("the app is quitting")   # this process's own calls
        jobs = self.jobs()
        if not jobs:
            self.exit()
            return
        for handle in jobs:
            handle.stop()
        self.notify("stopping the running job(s): saving checkpoints, then quitting",
                    title="quit", timeout=STOP_WAIT_S + 2)
        self._quit_after_jobs(jobs)

    @work(thread=True, exclusive=True, exit_on_error=False, group="quit",
          description="stop jobs, then quit")
    def _quit_after_jobs(self, jobs) -> None:
        shutdown_jobs(jobs)
        self.call_from_thread(self.exit)

    # ----------------------------------------------------------------- global actions
    def action_help(self) -> None:
        from re2llm_tui.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.key_groups()))

    def key_groups(self) -> list[tuple[str, list[Binding]]]:
        """(where, bindings) of the app and of each screen, for the help screen."""
        from re2llm_tui.tui.screens.reflection import ReflectionScreen
        from re2llm_tui.tui.screens.session_detail import SessionDetailScreen

        modes = self.MODES
        return [("everywhere", list(self.BINDINGS)),
                ("sessions", list(modes["sessions"].BINDINGS)),
                ("session detail", list(SessionDetailScreen.BINDINGS)),
                ("reflection", list(ReflectionScreen.BINDINGS)),
                ("hint review", list(modes["review"].BINDINGS)),
                ("knowledge base", list(modes["kb"].BINDINGS)),
                ("training", list(modes["training"].BINDINGS)),
                ("evaluation", list(modes["evaluation"].BINDINGS)),
                ("runs", list(modes["runs"].BINDINGS))]

    def action_toggle_split(self) -> None:
        self.config.split = "test" if self.config.split == "train" else "train"
        self.changed("split")

    def palette_actions(self, screen) -> list[tuple[str, str, Callable]]:
        """(title, help, callback) of every action: global ones, then the screen's own."""
        out = [
            ("Go to sessions", "browse the split's sessions", lambda: self.switch_mode("sessions")),
            ("Go to hint review", "accept / reject / edit / merge candidate hints",
             lambda: self.switch_mode("review")),
            ("Go to knowledge base", "all hints: add, edit, delete, search, import, export",
             lambda: self.switch_mode("kb")),
            ("Go to training", "train the PPO hint-retrieval agent",
             lambda: self.switch_mode("training")),
            ("Go to evaluation", "compare policies on the test split",
             lambda: self.switch_mode("evaluation")),
            ("Go to runs", "every stored run: list, compare, drill down",
             lambda: self.switch_mode("runs")),
            ("Start training", "start the agent's training in a background process",
             lambda: self.training.confirm(self.training.start)),
            ("Pause training", "pause the training process", self.training.pause),
            ("Resume training", "resume a paused or stopped training run", self.training.resume),
            ("Stop training", "stop training (keeps the last checkpoint)", self.training.stop),
            ("Run evaluation", "compare no hint, agent, random, best single, oracle, content",
             self.evaluation.request),
            ("Undo last KB change", "revert the newest change of the knowledge base",
             self.undo_kb),
            ("Toggle train/test split", "browse the other split", self.action_toggle_split),
            ("Show keys", "list every key binding", self.action_help),
            ("Quit", "quit (stops training cleanly)", self.exit),
        ]
        extra = getattr(screen, "palette_actions", None)
        if callable(extra):
            out = list(extra()) + out
        return out

    def undo_kb(self) -> None:
        def _undo(db):
            entry = self.kb(db).undo()
            return f"undone: {entry['detail']}", entry["hint_ids"]

        self.kb_change(_undo, "undo")


def freeze_gc(collect: bool = False) -> None:
    """Move every object alive now (screens, widgets, loaded data, imported modules) out of
    the garbage collector's reach: a full collection over them paused the UI for 50 ms or
    more at random moments (gen 2 of ~110k objects: 53 ms headless).  They are still freed by
    reference counting; only cycles among them are never collected."""
    import gc

    if collect:
        gc.collect()
    gc.freeze()


def make_app(dataset: str, model: str | None = None, db: str | os.PathLike | None = None,
             data_dir: str | os.PathLike | None = None, *, split: str | None = None,
             train_options: dict | None = None, eval_options: dict | None = None,
             llm_options: dict | None = None, samples: int = 1) -> Re2LLMApp:
    """Build the workbench for ``dataset`` (validates the dataset and opens the workspace).
    ``split``: the split browsed first; by default train, or test where a dataset (an
    imported test set) has no train sessions."""
    import multiprocessing.resource_tracker

    from re2llm_tui.data.dataset import Dataset
    from re2llm_tui.llm.client import resolve_model
    from re2llm_tui.store.workspace import open_workspace, workspace_path

    # Start the resource tracker now, while the real stdio is in place: spawned later from
    # inside a running Textual app (which redirects stdout/stderr), it fails with
    # "ValueError: bad value(s) in fds_to_keep" -- in a real terminal and headless alike.
    multiprocessing.resource_tracker.ensure_running()
    ds = Dataset.resolve(dataset, data_dir)      # the edge; one-line error before the UI
    if split is None:
        split = "test" if not ds.count("train") and ds.count("test") else "train"
    path = workspace_path(db)
    open_workspace(path).conn.close()            # create / check the workspace up front
    config = AppConfig(ds=ds, model=resolve_model(model), db_path=path, split=split,
                       train_options=dict(train_options or {}),
                       eval_options=dict(eval_options or {}),
                       llm_options=dict(llm_options or {}), samples=samples)
    return Re2LLMApp(config)


#: after SIGTERM, SIGHUP or a closed terminal: seconds the app has to quit by itself (its
#: jobs stop with their checkpoints within :data:`STOP_WAIT_S`) before the process ends anyway
QUIT_DEADLINE_S = STOP_WAIT_S + 3.0
#: seconds between two looks at whether the terminal is still there
TERMINAL_POLL_S = 0.5


def run_app(app: Re2LLMApp) -> int:
    """Run in a real terminal; returns the exit code (non-zero when the app crashed).

    The resource tracker must run before Textual starts, or spawning the training process
    fails with ``bad value(s) in fds_to_keep``.  SIGTERM, SIGINT, SIGHUP and a terminal that
    closes (noticed even without a SIGHUP) quit the app like ``q``: jobs stop with their
    checkpoints.  Should the app not have ended :data:`QUIT_DEADLINE_S` seconds later (a
    Textual thread blocked on the dead terminal, say), the jobs are ended and so is the
    process: no process is left behind.  A second SIGTERM/SIGINT ends everything at once.
    """
    import multiprocessing.resource_tracker
    import signal
    import threading

    multiprocessing.resource_tracker.ensure_running()
    textual_compat.survive_terminal_loss()     # writes to a closed terminal never block
    finished = threading.Event()               # app.run() has returned
    asked: list[int] = []                      # signals (or -1: terminal gone) so far
    lock = threading.Lock()

    def hard_exit(code: int) -> None:
        from re2llm_tui.control import end_process_now

        for handle in list(app.jobs()):
            try:
                handle.shutdown(0.0)
            except Exception:  # noqa: BLE001 - ending anyway
                pass
        end_process_now(code)

    def deadline_watch(code: int) -> None:
        if finished.wait(QUIT_DEADLINE_S):
            return
        shutdown_jobs(app.jobs(), timeout=0.5)
        hard_exit(code)

    def end(signum: int) -> None:
        """Quit like ``q``, and make sure the process ends (any thread)."""
        with lock:
            asked.append(signum)
            first = len(asked) == 1
        code = 128 + (signum if signum > 0 else signal.SIGHUP)
        if not first:
            if signum in (signal.SIGTERM, signal.SIGINT):
                hard_exit(code)                # the user insists
            return
        threading.Thread(target=deadline_watch, args=(code,), name="re2llm-quit-deadline",
                         daemon=True).start()
        try:
            app.call_later(app.action_quit)
        except Exception:  # noqa: BLE001 - not running yet / already gone: the deadline ends it
            pass

    def on_signal(signum, frame):  # noqa: ARG001
        end(signum)

    def terminal_watch(fd: int) -> None:
        import termios

        while not finished.wait(TERMINAL_POLL_S):
            try:
                termios.tcgetattr(fd)
            except termios.error:              # EIO: the terminal was hung up / closed
                end(-1)
                return

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            previous[sig] = signal.signal(sig, on_signal)
    try:
        fd = sys.__stdin__.fileno() if sys.__stdin__ is not None else -1
        if fd >= 0 and os.isatty(fd):
            threading.Thread(target=terminal_watch, args=(fd,), name="re2llm-terminal-watch",
                             daemon=True).start()
    except (OSError, ValueError):
        pass
    try:
        app.run()
    finally:
        shutdown_jobs(app.jobs())
        finished.set()
        for sig, old in previous.items():
            signal.signal(sig, old)
    code = app.return_code
    if asked and not code:
        return 128 + (asked[0] if asked[0] > 0 else signal.SIGHUP)
    return 1 if code is None else int(code)
