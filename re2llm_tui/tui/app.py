"""The workbench app and its one factory, :func:`make_app`, used by the CLI and the tests.

Architecture (see ../shared/STYLE.md):

* Screens are Textual *modes* (sessions, review, kb, training, evaluation); session detail and
  reflection are pushed on the sessions stack; help is a modal.
* The main thread has its own workspace connection (:attr:`Re2LLMApp.db`) for reads; every
  worker opens its own (:meth:`Re2LLMApp.open_db`): a SQLite connection works only in the
  thread that made it.  The workspace is in WAL mode, so a CLI job can share it.
* Long work runs in named thread workers that post typed messages (:mod:`.messages`); a
  failure becomes a notification and changes nothing the user did.
* Training runs in a spawned *process* (:mod:`re2llm_tui.training`); a watcher thread polls
  it and posts mergeable :class:`~.messages.TrainingProgress` messages; charts keep bounded
  deques and redraw at most 4 times a second.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.worker import Worker, WorkerState

from .messages import (EvaluationFinished, KBChanged, RecommendFinished, ReflectionFinished,
                       TrainingBatch, TrainingProgress, TrainingStateChanged)
from .monitor import TrainingMonitor


class FeatureUnavailable(Exception):
    """A core module the action needs has not landed (or failed to import)."""


def core(module: str, name: str, what: str) -> Callable:
    """A public function of a core module, or :class:`FeatureUnavailable` with a clear line."""
    try:
        mod = importlib.import_module(f"re2llm_tui.{module}")
    except ImportError as exc:
        raise FeatureUnavailable(f"{what}: module re2llm_tui.{module} not available yet "
                                 f"({exc})") from None
    fn = getattr(mod, name, None)
    if fn is None:
        raise FeatureUnavailable(f"{what}: re2llm_tui.{module}.{name} not available yet")
    return fn


def error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    from ..errors import UserError

    if isinstance(exc, (UserError, FeatureUnavailable)):
        return text
    return f"{type(exc).__name__}: {text}"


@dataclass
class AppConfig:
    dataset: str
    model: str
    db_path: Path
    data_dir: Path | None = None
    split: str = "train"
    eval_split: str = "test"
    #: extra keyword arguments for the training process (tests pass tiny budgets)
    train_options: dict[str, Any] = field(default_factory=dict)
    #: extra keyword arguments for the evaluation
    eval_options: dict[str, Any] = field(default_factory=dict)
    #: extra keyword arguments for the LLM client (e.g. max_retries, max_cost)
    llm_options: dict[str, Any] = field(default_factory=dict)

    @property
    def is_demo_model(self) -> bool:
        from ..llm.client import is_local_model

        return is_local_model(self.model)

    @property
    def workspace_label(self) -> str:
        try:
            return str(self.db_path.resolve().relative_to(Path.cwd().resolve()))
        except ValueError:
            return str(self.db_path)


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


class Re2LLMApp(App):
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
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, config: AppConfig) -> None:
        from .screens.evaluation import EvaluationScreen
        from .screens.hint_review import HintReviewScreen
        from .screens.knowledge_base import KnowledgeBaseScreen
        from .screens.sessions import SessionsScreen
        from .screens.training import TrainingScreen

        self.MODES = {"sessions": SessionsScreen, "review": HintReviewScreen,
                      "kb": KnowledgeBaseScreen, "training": TrainingScreen,
                      "evaluation": EvaluationScreen}
        super().__init__()
        self.config = config
        self._db = None
        self._db_thread: int | None = None
        self._llm = None
        self._llm_lock = threading.Lock()
        self.trainer = None                # the training process handle, when started
        self.monitor = TrainingMonitor()   # bounded series of the training scalars
        self.training_state = "idle"
        self.last_evaluation: EvaluationFinished | None = None
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
        from ..workspace import open_workspace

        return open_workspace(self.config.db_path)

    def sessions(self, split: str | None = None):
        from ..datasets import load_sessions

        return load_sessions(self.config.dataset, split or self.config.split,
                             self.config.data_dir)

    def session(self, session_id: str):
        from ..datasets import get_session

        return get_session(self.config.dataset, session_id, self.config.data_dir)

    def llm(self):
        """The app's one LLM client (created on first use, in a worker)."""
        with self._llm_lock:
            if self._llm is None:
                from ..llm.client import LLMClient

                self._llm = LLMClient(self.config.db_path, model=self.config.model,
                                      **self.config.llm_options)
            return self._llm

    def header_text(self, screen_title: str):
        from .widgets.app_header import header_text

        c = self.config
        return header_text(screen_title, c.dataset, c.split, c.model, c.is_demo_model,
                           c.workspace_label, self.current_mode)

    # ----------------------------------------------------------------- screens
    _no_delay = False

    def switch_mode(self, mode: str):
        """Textual's switch, without its 50 ms ``delay_update`` when the mode's screen is
        already mounted: that delay masks a half-composed new screen, and a mounted one is
        painted whole at once (it was most of the 80 ms a switch took in tmux)."""
        self._no_delay = mode in self._screen_stacks
        try:
            return super().switch_mode(mode)
        finally:
            if not self._no_delay:            # a new screen: its widgets live long
                self.call_after_refresh(freeze_gc)
            self._no_delay = False

    def delay_update(self, delay: float = 0.05) -> None:
        if not self._no_delay:
            super().delay_update(delay)

    # ----------------------------------------------------------------- lifecycle
    def on_mount(self) -> None:
        self.switch_mode("sessions")
        self.call_after_refresh(freeze_gc, True)
        if self.config.is_demo_model and self.show_demo_notice:
            self.notify("Embedded demo model SmolLM2-135M: rankings are only a little better "
                        "than random. Use --model (e.g. gpt-4o-mini) for real results.",
                        title="demo model", severity="warning", timeout=8)

    def on_unmount(self) -> None:
        import gc

        gc.unfreeze()        # see freeze_gc: this app's objects may be collected again
        self.stop_training(wait=True)
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
        for screen in self._all_screens():
            if hasattr(screen, "reload"):
                screen.reload()

    def _all_screens(self):
        seen = []
        for stack in self._screen_stacks.values():
            for s in stack:
                if s not in seen and s.is_mounted:
                    seen.append(s)
        return seen

    def recommend(self, session_id: str, hint_id: int | None = None) -> None:
        self.notify(f"recommending for {session_id}"
                    + (f" with hint #{hint_id}" if hint_id else " (no hint)") + " …", timeout=3)
        self._recommend_worker(session_id, hint_id)

    @work(thread=True, exclusive=True, exit_on_error=False, group="recommend",
          description="recommend")
    def _recommend_worker(self, session_id: str, hint_id: int | None) -> None:
        recommend = core("recommend", "recommend", "recommend")
        from .. import kb

        session = self.session(session_id)
        hint = None
        if hint_id:
            db = self.open_db()
            try:
                hint = kb.get_hint(db, self.config.dataset, hint_id,
                                   data_dir=self.config.data_dir).text
            finally:
                db.conn.close()
        out = recommend([session], self.llm(), dataset=self.config.dataset,
                        split=session.split, hint=hint, hint_id=hint_id or None)
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
        for screen in self._all_screens():
            if hasattr(screen, "reload"):
                screen.reload()

    def reflect(self, session_id: str) -> None:
        self.notify(f"reflecting on {session_id} …", timeout=3)
        self._reflect_worker(session_id)

    @work(thread=True, exclusive=True, exit_on_error=False, group="reflect",
          description="reflect")
    def _reflect_worker(self, session_id: str) -> None:
        import asyncio

        explore = core("reflection", "explore", "reflect")
        db = self.open_db()
        try:
            summary = asyncio.run(explore(db, self.llm(), self.config.dataset,
                                          session_id=session_id, data_dir=self.config.data_dir))
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
        for screen in self._all_screens():
            if hasattr(screen, "reload"):
                screen.reload()

    # ----------------------------------------------------------------- training
    def start_training(self, resume: bool = False) -> None:
        """Start the agent's training in a spawned process (``resume``: continue the latest
        unfinished run of this dataset/model from its checkpoint)."""
        if self.trainer is not None and self.trainer.is_alive() and \
                self.trainer.state in ("done", "stopped", "failed"):
            # the previous run has finished and its process is exiting: start after it
            self.notify("waiting for the previous training process to exit …", timeout=3)
            self._start_after_exit(self.trainer, resume)
            return
        if self.trainer is not None and self.trainer.is_alive():
            self.notify("training is already running (x stops it)", severity="warning")
            return
        try:
            start = core("training", "start_training_process", "training")
        except FeatureUnavailable as exc:
            self.notify(str(exc), title="training", severity="warning")
            return
        opts = dict(self.config.train_options)
        if "api_bases" in self.config.llm_options:
            opts.setdefault("api_bases", tuple(self.config.llm_options["api_bases"]))
        try:
            self.trainer = start(self.config.dataset, model=self.config.model,
                                 db_path=str(self.config.db_path),
                                 data_dir=self.config.data_dir, resume=resume, **opts)
        except Exception as exc:
            self.notify(error_line(exc), title="training", severity="error", timeout=12)
            return
        from .. import kb

        _, actions = kb.action_list(self.db, self.config.dataset, data_dir=self.config.data_dir)
        self.monitor.clear()
        self.monitor.action_labels = ["none" if h == 0 else f"#{h}" for h, _ in actions]
        self.training_state = "starting"
        freeze_gc()
        self.notify("resuming the latest unfinished run" if resume else "started a new run",
                    title="training", timeout=4)
        self._watch_training(self.trainer)

    @work(thread=True, exclusive=True, exit_on_error=False, group="training-start",
          description="start training")
    def _start_after_exit(self, handle, resume: bool) -> None:
        handle.join(timeout=120)
        if handle.is_alive():
            raise RuntimeError("the previous training process did not exit; stop it first")
        self.call_from_thread(self.start_training, resume)

    @work(thread=True, exclusive=True, exit_on_error=False, group="training-watch",
          description="training monitor")
    def _watch_training(self, handle) -> None:
        """Poll the training process; post its scalars (bursts merge) and state changes."""
        worker = _current_worker()
        last_state = None
        while not worker.is_cancelled:
            alive = handle.is_alive()
            scalars = handle.poll()
            if scalars:
                self.post_message(TrainingProgress(TrainingBatch(list(scalars))))
            if handle.state != last_state:
                last_state = handle.state
                self.post_message(TrainingStateChanged(handle.state, handle.error or ""))
            if not alive:
                return
            time.sleep(0.1)

    def on_training_progress(self, message: TrainingProgress) -> None:
        self.monitor.add(message.batch.scalars)

    def on_training_state_changed(self, message: TrainingStateChanged) -> None:
        self.training_state = message.state
        if message.state == "failed":
            self.notify(message.detail or "training failed", title="training failed",
                        severity="error", timeout=15)
        elif message.state in ("done", "stopped"):
            summary = getattr(self.trainer, "summary", None) or {}
            self.notify(f"{message.state} at step {summary.get('step', self.monitor.step)}"
                        + (f" ({summary.get('reason')})" if summary.get("reason") else "")
                        + "; the checkpoint is kept", title="training", timeout=6)

    def pause_training(self) -> None:
        if self.trainer is None or not self.trainer.is_alive():
            self.notify("training is not running", severity="warning")
            return
        self.trainer.pause()
        self.training_state = self.trainer.state

    def resume_training(self) -> None:
        """Continue a paused run, or resume the latest stopped one from its checkpoint."""
        if self.trainer is not None and self.trainer.is_alive() and \
                self.trainer.state == "paused":
            self.trainer.resume()
            self.training_state = self.trainer.state
        else:
            self.start_training(resume=True)

    def stop_training(self, wait: bool = False) -> None:
        handle = self.trainer
        if handle is None or not handle.is_alive():
            return
        handle.stop()
        self.training_state = handle.state
        if wait:
            handle.join(timeout=60)
            if handle.is_alive():
                handle.terminate()
        else:
            self.notify("stopping: the run saves a checkpoint (c resumes it)",
                        title="training", timeout=4)

    # ----------------------------------------------------------------- evaluation
    def evaluate(self) -> None:
        self.notify("evaluating policies …", timeout=3)
        self._evaluate_worker()

    @work(thread=True, exclusive=True, exit_on_error=False, group="evaluate",
          description="evaluate")
    def _evaluate_worker(self) -> None:
        evaluate = core("evaluation", "evaluate", "evaluation")
        db = self.open_db()
        try:
            out = evaluate(db, self.config.dataset, split=self.config.eval_split,
                           client=self.llm(), data_dir=self.config.data_dir,
                           **self.config.eval_options)
        finally:
            db.conn.close()
        rows = getattr(out, "rows", None) or getattr(out, "summaries", None) or out
        paired = getattr(out, "paired", None)
        self.post_message(EvaluationFinished(dict(rows), paired))

    def on_evaluation_finished(self, message: EvaluationFinished) -> None:
        self.last_evaluation = message
        self.notify(f"{len(message.rows)} policies compared", title="evaluation", timeout=5)
        for screen in self._all_screens():
            if hasattr(screen, "show_evaluation"):
                screen.show_evaluation(message)

    # ----------------------------------------------------------------- quitting
    async def action_quit(self) -> None:
        """Quit; a running training process is stopped first and saves its checkpoint (a
        second q while it does so quits at once and terminates it)."""
        handle = self.trainer
        if handle is None or not handle.is_alive():
            self.exit()
            return
        if getattr(self, "_quitting", False):
            handle.terminate()
            self.exit()
            return
        self._quitting = True
        handle.stop()
        self.training_state = handle.state
        self.notify("stopping training: waiting for it to save its checkpoint, then quitting "
                    "(q again: quit now, losing the steps since the last checkpoint)",
                    title="quit", timeout=60)
        self._quit_after_training(handle)

    @work(thread=True, exclusive=True, exit_on_error=False, group="quit",
          description="stop training, then quit")
    def _quit_after_training(self, handle) -> None:
        handle.join(timeout=120)
        if handle.is_alive():
            handle.terminate()
        self.call_from_thread(self.exit)

    # ----------------------------------------------------------------- global actions
    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_split(self) -> None:
        self.config.split = "test" if self.config.split == "train" else "train"
        for screen in self._all_screens():
            if hasattr(screen, "reload"):
                screen.reload()
            for header in screen.query("AppHeader"):
                header.refresh_info()

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
            ("Start training", "start the agent's training in a background process",
             lambda: self.start_training()),
            ("Pause training", "pause the training process", self.pause_training),
            ("Resume training", "resume a paused or stopped training run", self.resume_training),
            ("Stop training", "stop training (keeps the last checkpoint)", self.stop_training),
            ("Run evaluation", "compare no hint, agent, random, best single, oracle, content",
             self.evaluate),
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
        from .. import kb

        def _undo(db):
            entry = kb.undo(db, self.config.dataset, data_dir=self.config.data_dir)
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


def _current_worker():
    from textual.worker import get_current_worker

    return get_current_worker()


def make_app(dataset: str, model: str | None = None, db: str | os.PathLike | None = None,
             data_dir: str | os.PathLike | None = None, *, split: str = "train",
             train_options: dict | None = None, eval_options: dict | None = None,
             llm_options: dict | None = None) -> Re2LLMApp:
    """Build the workbench for ``dataset`` (validates the dataset and opens the workspace)."""
    from ..datasets import canonical_domain, find_data_dir
    from ..llm.client import resolve_model
    from ..workspace import open_workspace, workspace_path

    import multiprocessing.resource_tracker

    # Start the resource tracker now, while the real stdio is in place: spawned later from
    # inside a running Textual app (which redirects stdout/stderr), it fails with
    # "ValueError: bad value(s) in fds_to_keep" -- in a real terminal and headless alike.
    multiprocessing.resource_tracker.ensure_running()
    dataset = canonical_domain(dataset)
    find_data_dir(dataset, data_dir)             # one-line error before the UI starts
    path = workspace_path(db)
    open_workspace(path).conn.close()            # create / check the workspace up front
    config = AppConfig(dataset=dataset, model=resolve_model(model), db_path=path,
                       data_dir=Path(data_dir) if data_dir else None, split=split,
                       train_options=dict(train_options or {}),
                       eval_options=dict(eval_options or {}),
                       llm_options=dict(llm_options or {}))
    return Re2LLMApp(config)


def run_app(app: Re2LLMApp) -> None:
    """Run in a real terminal.  The resource tracker must run before Textual starts, or
    spawning the training process fails with ``bad value(s) in fds_to_keep``."""
    import multiprocessing.resource_tracker

    multiprocessing.resource_tracker.ensure_running()
    app.run()
