"""The workbench app and its one factory, :func:`make_app`, used by the CLI and the tests.

Architecture (see ../shared/STYLE.md):

* Screens are Textual *modes* (sessions, review, kb, training, evaluation); session detail and
  reflection are pushed on the sessions stack; help is a modal.
* The main thread has its own workspace connection (:attr:`Re2LLMApp.db`) for reads; every
  worker opens its own (:meth:`Re2LLMApp.open_db`): a SQLite connection works only in the
  thread that made it.  The workspace is in WAL mode, so a CLI job can share it.
* Long work runs in named thread workers that post typed messages (:mod:`.messages`); a
  failure becomes a notification and changes nothing the user did.
* Training runs in a spawned *process* (:mod:`re2llm_tui.utilization.training`); a watcher thread polls
  it and posts mergeable :class:`~.messages.TrainingProgress` messages; charts keep bounded
  deques and redraw at most 4 times a second.
"""

from __future__ import annotations

import os
import sys
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

from re2llm_tui.data.dataset import Dataset
from re2llm_tui.safe_text import clean
from re2llm_tui.store import changes
from re2llm_tui.tui import textual_compat
from re2llm_tui.tui.messages import (
    EvaluationFinished,
    EvaluationProgress,
    KBChanged,
    RecommendFinished,
    ReflectionFinished,
    TrainingBatch,
    TrainingProgress,
    TrainingStateChanged,
)
from re2llm_tui.tui.monitor import TrainingMonitor

#: seconds between two looks at the workspace's ``PRAGMA data_version`` (other processes'
#: commits: a CLI job, the training process) while the app is idle
DATA_POLL_S = 1.0
#: how long quit and stop wait for a job to save its checkpoint before ending it
STOP_WAIT_S = 2.0


def error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    from re2llm_tui.errors import UserError

    if isinstance(exc, UserError):
        return text
    return f"{type(exc).__name__}: {text}"


@dataclass
class AppConfig:
    ds: Dataset                 # resolved once, at the app's start
    model: str
    db_path: Path
    split: str = "train"
    eval_split: str = "test"
    #: extra keyword arguments for the training process (tests pass tiny budgets)
    train_options: dict[str, Any] = field(default_factory=dict)
    #: extra keyword arguments for the evaluation
    eval_options: dict[str, Any] = field(default_factory=dict)
    #: extra keyword arguments for the LLM client (e.g. max_retries, max_cost)
    llm_options: dict[str, Any] = field(default_factory=dict)

    @property
    def dataset(self) -> str:
        """The dataset's name (games | movies)."""
        return self.ds.name

    @property
    def data_root(self) -> str:
        """The release folder, for the job processes (each resolves the dataset anew)."""
        return str(self.ds.root)

    @property
    def is_demo_model(self) -> bool:
        from re2llm_tui.llm.client import is_local_model

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
        self.trainer = None                # the training process handle, when started
        self.evaluator = None              # the evaluation process handle, when started
        self.monitor = TrainingMonitor()   # bounded series of the training scalars
        self.training_state = "idle"
        self.training_phase = ""
        self.resumable_run: dict | None = None   # a stopped run the Training screen offers
        self.plan = None                   # the proposed run being trained (then evaluated)
        self._last_plan = None
        self.evaluation_state = "idle"
        self.evaluation_progress: dict | None = None
        self.evaluation_note = ""
        self.last_evaluation: EvaluationFinished | None = None
        self._quitting = False
        self._data_version: int | None = None
        #: say once, at start, that the embedded demo model is a toy (tests turn it off)
        self.show_demo_notice = True
        #: show the cost preflight before a priced model's job starts (tests of the jobs
        #: themselves turn it off; tests/test_preflight.py covers the confirmation)
        self.ask_before_paying = True

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
        current = self.screen
        for screen in self._all_screens():
            if not hasattr(screen, "refresh_if_changed"):
                continue
            if screen is current:
                screen.refresh_if_changed()
            else:
                screen.stale = True
        if self.trainer is None or not self.trainer.is_alive():
            self.refresh_resumable()

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
        self.refresh_resumable()
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
        for screen in self._all_screens():
            if hasattr(screen, "reload"):
                screen.reload()

    def _all_screens(self):
        return textual_compat.mounted_screens(self)

    def recommend(self, session_id: str, hint_id: int | None = None) -> None:
        self.notify(f"recommending for {session_id}"
                    + (f" with hint #{hint_id}" if hint_id else " (no hint)") + " …", timeout=3)
        self._recommend_worker(session_id, hint_id)

    @work(thread=True, exclusive=True, exit_on_error=False, group="recommend",
          description="recommend")
    def _recommend_worker(self, session_id: str, hint_id: int | None) -> None:
        from re2llm_tui.evaluation.recommend import recommend

        session = self.session(session_id)
        hint = None
        if hint_id:
            db = self.open_db()
            try:
                hint = self.kb(db).get(hint_id).text
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
        for screen in self._all_screens():
            if hasattr(screen, "reload"):
                screen.reload()

    # ----------------------------------------------------------------- training
    def propose_training(self) -> None:
        """``s`` on the Training screen.  With the embedded demo model, first propose a run
        sized to finish in about 15 minutes (Enter starts it, f the full set); a real model
        starts the full run at once."""
        if self.trainer is not None and self.trainer.is_alive():
            self.notify("training is already running (x stops it)", severity="warning")
            return
        if not self.config.is_demo_model or self.config.train_options.get("limit"):
            self.confirm_cost("train", self.start_training)
            return
        self._plan_worker()

    @work(thread=True, exclusive=True, exit_on_error=False, group="plan",
          description="size a first run")
    def _plan_worker(self) -> None:
        from re2llm_tui.costs.run_plan import propose

        db = self.open_db()
        try:
            plan = propose(db, self.llm(), self.config.ds,
                           workers=1)
        finally:
            db.conn.close()
        self.call_from_thread(self._ask_plan, plan)

    def _ask_plan(self, plan) -> None:
        from re2llm_tui.tui.widgets.dialogs import ProposalDialog

        def chosen(answer) -> None:
            if answer == "proposed":
                self.start_training(plan=plan)
            elif answer == "full":
                self.start_training()

        self.push_screen(ProposalDialog(plan), chosen)

    def start_training(self, resume: bool = False, plan=None) -> None:
        """Start the agent's training in a spawned process (``resume``: continue the latest
        unfinished run of this dataset/model from its checkpoint; ``plan``: a
        :class:`~re2llm_tui.costs.run_plan.RunPlan` slice, evaluated when training ends)."""
        if self.trainer is not None and self.trainer.is_alive():
            if self.trainer.state in ("done", "stopped", "failed"):
                # the previous run has finished and its process is exiting: start after it
                self.notify("waiting for the previous training process to exit …", timeout=3)
                self._start_after_exit(self.trainer, resume, plan)
            else:
                self.notify("training is already running (x stops it)", severity="warning")
            return
        from re2llm_tui.utilization.training import start_training_process

        opts = dict(self.config.train_options)
        if "api_bases" in self.config.llm_options:
            opts.setdefault("api_bases", tuple(self.config.llm_options["api_bases"]))
        opts.setdefault("workers", 1)          # the UI keeps the other core
        if plan is not None:
            opts.update(limit=plan.train_sessions, steps=plan.steps,
                        log_every=plan.log_every, prefill=True)
        elif resume and self.resumable_run is not None and "limit" not in opts:
            # resume exactly the run on offer (its session slice and budget)
            run = self.resumable_run
            if run.get("n_sessions"):
                opts["limit"] = int(run["n_sessions"])
            opts.setdefault("steps", int(run.get("total_steps") or 0) or 500_000)
            opts.setdefault("seed", int(run.get("seed") or 1))
        try:
            self.trainer = start_training_process(
                self.config.dataset, model=self.config.model, db_path=str(self.config.db_path),
                data_dir=self.config.data_root, resume=resume, **opts)
        except Exception as exc:
            self.notify(error_line(exc), title="training", severity="error", timeout=12)
            return
        if plan is not None:
            self._last_plan = plan
        elif resume and self._last_plan is not None and \
                opts.get("limit") == self._last_plan.train_sessions:
            plan = self._last_plan          # resuming the proposed run: evaluate it after
        self.plan = plan
        _, actions = self.kb().actions()
        self.monitor.clear()
        self.monitor.action_labels = ["none" if h == 0 else f"#{h}" for h, _ in actions]
        self.training_state = "starting"
        self.resumable_run = None
        freeze_gc()
        what = ("resuming the latest unfinished run" if resume else
                f"proposed run: {plan.train_sessions} sessions x {plan.n_actions} actions, "
                f"then evaluation of {plan.eval_sessions} test sessions" if plan is not None
                else "started a new run")
        self.notify(what, title="training", timeout=5)
        self._watch_training(self.trainer)

    @work(thread=True, exclusive=True, exit_on_error=False, group="training-start",
          description="start training")
    def _start_after_exit(self, handle, resume: bool, plan) -> None:
        handle.join(timeout=10)
        if handle.is_alive():
            handle.shutdown(STOP_WAIT_S)
        self.call_from_thread(self.start_training, resume, plan)

    @work(thread=True, exclusive=True, exit_on_error=False, group="training-watch",
          description="training monitor")
    def _watch_training(self, handle) -> None:
        """Poll the training process; post its scalars (bursts merge) and state changes."""
        worker = _current_worker()
        last = None
        while not worker.is_cancelled:
            alive = handle.is_alive()
            scalars = handle.poll()
            if scalars:
                self.post_message(TrainingProgress(TrainingBatch(list(scalars))))
            now = (handle.state, handle.phase, handle.step, handle.llm_calls)
            if now != last:
                last = now
                self.post_message(TrainingStateChanged(handle.state, handle.error or "",
                                                       phase=handle.phase, step=handle.step,
                                                       llm_calls=handle.llm_calls))
            if not alive and handle.state not in ("starting", "running", "pausing", "paused",
                                                  "stopping"):
                return
            time.sleep(0.1)

    def on_training_progress(self, message: TrainingProgress) -> None:
        self.monitor.add(message.batch.scalars)

    def on_training_state_changed(self, message: TrainingStateChanged) -> None:
        self.training_state = message.state
        self.training_phase = message.phase
        self.monitor.step = max(self.monitor.step, message.step)
        if message.llm_calls:
            self.monitor.latest["charts/llm_calls"] = message.llm_calls
        self.monitor.version += 1
        if message.state == "failed":
            self.notify(message.detail or "training failed", title="training failed",
                        severity="error", timeout=15)
            self.refresh_resumable()
        elif message.state in ("done", "stopped"):
            summary = getattr(self.trainer, "summary", None) or {}
            self.notify(f"{message.state} at step {summary.get('step', message.step)}"
                        + (f" ({summary.get('reason')})" if summary.get("reason") else "")
                        + "; the checkpoint is kept", title="training", timeout=6)
            plan = getattr(self, "plan", None)
            if message.state == "done" and plan is not None and not self._quitting:
                self.plan = None
                self.start_evaluation(plan=plan)
                self.switch_mode("evaluation")
            self.refresh_resumable()

    def refresh_resumable(self) -> None:
        """Find the run the Training screen offers to resume (stopped, or running with a
        dead process), reading the workspace."""
        from re2llm_tui.utilization.training import resumable_run

        try:
            self.resumable_run = resumable_run(self.db, self.config.dataset, self.config.model)
        except Exception as exc:  # noqa: BLE001 - a damaged record must not stop the app
            self.log.error("resumable run", exc)
            self.resumable_run = None

    def pause_training(self) -> None:
        if self.trainer is None or not self.trainer.is_alive():
            self.notify("training is not running", severity="warning")
            return
        self.trainer.pause()
        self.training_state = self.trainer.state

    def resume_training(self) -> None:
        """Continue a paused run, or resume the latest stopped one from its checkpoint."""
        if self.trainer is not None and self.trainer.is_alive() and \
                self.trainer.state in ("paused", "pausing"):
            self.trainer.resume()
            self.training_state = self.trainer.state
        else:
            self.confirm_cost("train", lambda: self.start_training(resume=True), resume=True)

    def stop_training(self) -> None:
        handle = self.trainer
        if handle is None or not handle.is_alive():
            return
        handle.stop()
        self.training_state = handle.state
        self.notify("stopping: the run saves its checkpoint (c resumes it)",
                    title="training", timeout=4)

    # ----------------------------------------------------------------- evaluation
    def evaluate(self) -> None:
        self.confirm_cost("evaluate", self.start_evaluation)

    # ----------------------------------------------------------------- cost preflight
    def confirm_cost(self, command: str, start: Callable[[], None], *,
                     resume: bool = False) -> None:
        """Start a job that pays for LLM calls: a local model starts at once; with a priced
        model the cost preflight (``--dry-run``'s estimate) is shown first and the job
        starts only when confirmed (``resume``: the stopped run on offer is resumed)."""
        if self.config.is_demo_model or not self.ask_before_paying:
            start()
            return
        limit = self.config.train_options.get("limit")
        if resume and limit is None and self.resumable_run is not None:
            limit = self.resumable_run.get("n_sessions") or None
        self._preflight_worker(command, start, limit)

    @work(thread=True, exclusive=True, exit_on_error=False, group="preflight",
          description="cost preflight")
    def _preflight_worker(self, command: str, start: Callable[[], None],
                          train_limit: int | None = None) -> None:
        from re2llm_tui.costs import dry_run
        from re2llm_tui.costs.dry_run import dry_client

        c = self.config
        db = self.open_db()
        client = None
        try:
            client = dry_client(c.db_path, model=c.model, **c.llm_options)
            if command == "train":
                opts = c.train_options
                est = dry_run.train(client, db, c.ds, limit=train_limit,
                                    prefill=opts.get("prefill", True),
                                    rank_by=opts.get("rank_by", "reply"),
                                    workers=opts.get("workers", 1))
            else:
                opts = c.eval_options
                est = dry_run.evaluate(client, db, c.ds, c.eval_split, limit=opts.get("limit"),
                                       sample=opts.get("sample"), seed=opts.get("seed", 0),
                                       oracle=opts.get("oracle", True),
                                       train_run=opts.get("train_run"),
                                       permutations=opts.get("permutations", 0),
                                       rank_by=opts.get("rank_by", "reply"),
                                       workers=opts.get("workers", 1))
        except Exception as exc:  # noqa: BLE001 - a failed estimate starts nothing
            self.call_from_thread(self.notify, error_line(exc), title=f"{command}: cost preflight",
                                  severity="error", timeout=12)
            return
        finally:
            if client is not None:
                client.close()
            db.conn.close()
        self.call_from_thread(self._ask_cost, command, est, start)

    def _ask_cost(self, command: str, est, start: Callable[[], None]) -> None:
        from re2llm_tui.tui.screens.cost_confirm import CostConfirmDialog

        def answered(ok: bool | None) -> None:
            if ok:
                start()
            else:
                self.notify(f"{command}: not started", timeout=3)

        title = f"Start {'training' if command == 'train' else 'the evaluation'} with {est.model}?"
        self.push_screen(CostConfirmDialog(title, est), answered)

    def start_evaluation(self, plan=None) -> None:
        """Compare the policies in a spawned process (``plan``: its test slice, oracle row
        only when it fits the plan's budget)."""
        from re2llm_tui.evaluation.compare import EvalSpec, run_job
        from re2llm_tui.runtime.jobs import start_job

        if self.evaluator is not None and self.evaluator.is_alive():
            self.notify("an evaluation is already running (x stops it)", severity="warning")
            return
        opts = dict(self.config.eval_options)
        if plan is not None:
            opts.update(limit=plan.eval_sessions, oracle=plan.oracle)
        llm = {k: v for k, v in self.config.llm_options.items()}
        workers = opts.pop("workers", 1)       # `run --client-procs N`; else the UI keeps a core
        spec = EvalSpec(dataset=self.config.dataset, split=self.config.eval_split,
                        model=self.config.model, db_path=str(self.config.db_path),
                        data_dir=self.config.data_root,
                        workers=workers, llm_options=llm, **opts)
        try:
            self.evaluator = start_job(run_job, spec, name="evaluate")
        except Exception as exc:
            self.notify(error_line(exc), title="evaluation", severity="error", timeout=12)
            return
        self.evaluation_progress = None
        self.evaluation_state = "starting"
        note = ""
        if plan is not None and not plan.oracle:
            from re2llm_tui.costs.run_plan import fmt_duration

            note = (f"oracle row left out: it needs {plan.oracle_missing} more outcomes "
                    f"(~{fmt_duration(plan.oracle_s)} on this model)")
        self.evaluation_note = note
        self.notify(f"evaluating policies on {self.config.eval_split}"
                    + (f" (first {plan.eval_sessions} sessions)" if plan else "") + " …",
                    title="evaluation", timeout=4)
        self._watch_evaluation(self.evaluator)

    @work(thread=True, exclusive=True, exit_on_error=False, group="evaluation-watch",
          description="evaluation monitor")
    def _watch_evaluation(self, handle) -> None:
        worker = _current_worker()
        last_state = None
        while not worker.is_cancelled:
            alive = handle.is_alive()
            for msg in handle.poll():
                if msg.get("event") == "table":
                    self.post_message(EvaluationProgress(handle.state, msg))
            if handle.state != last_state:
                last_state = handle.state
                self.post_message(EvaluationProgress(handle.state, None))
            if not alive and handle.state in ("done", "stopped", "failed"):
                result = handle.result or {}
                if handle.state == "done" and "rows" in result:
                    self.post_message(EvaluationFinished(
                        dict(result["rows"]), result.get("paired"),
                        detail="; ".join(result.get("notes") or [])))
                elif handle.state == "failed":
                    self.post_message(EvaluationProgress("failed", None, handle.error or ""))
                return
            time.sleep(0.1)

    def on_evaluation_progress(self, message: EvaluationProgress) -> None:
        self.evaluation_state = message.state
        if message.progress is not None:
            self.evaluation_progress = message.progress
        if message.state == "failed":
            self.notify(message.detail or "evaluation failed", title="evaluation failed",
                        severity="error", timeout=15)
        elif message.state == "stopped":
            self.notify("evaluation stopped: finished outcomes are stored (e resumes)",
                        title="evaluation", timeout=5)
        for screen in self._all_screens():
            if hasattr(screen, "show_evaluation_progress"):
                screen.show_evaluation_progress()

    def on_evaluation_finished(self, message: EvaluationFinished) -> None:
        self.last_evaluation = message
        self.notify(f"{len(message.rows)} policies compared", title="evaluation", timeout=5)
        for screen in self._all_screens():
            if hasattr(screen, "show_evaluation"):
                screen.show_evaluation(message)

    def stop_evaluation(self) -> None:
        if self.evaluator is not None and self.evaluator.is_alive():
            self.evaluator.stop()
            self.notify("stopping the evaluation: finished outcomes are stored",
                        title="evaluation", timeout=4)

    # ----------------------------------------------------------------- quitting
    def jobs(self) -> list:
        return [h for h in (self.trainer, self.evaluator) if h is not None and h.is_alive()]

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
            ("Go to runs", "every stored run: list, compare, drill down",
             lambda: self.switch_mode("runs")),
            ("Start training", "start the agent's training in a background process",
             lambda: self.confirm_cost("train", self.start_training)),
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
        def _undo(db):
            entry = self.kb(db).undo()
            return f"undone: {entry['detail']}", entry["hint_ids"]

        self.kb_change(_undo, "undo")


def shutdown_jobs(jobs, timeout: float = STOP_WAIT_S) -> None:
    """Stop every job, wait up to ``timeout`` s in all for their checkpoints, then end the
    ones still running: no process outlives the app."""
    for handle in jobs:
        handle.stop()
    deadline = time.monotonic() + timeout
    for handle in jobs:
        handle.join(max(0.0, deadline - time.monotonic()))
    for handle in jobs:
        if handle.is_alive():
            handle.shutdown(0.0)


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
             data_dir: str | os.PathLike | None = None, *, split: str | None = None,
             train_options: dict | None = None, eval_options: dict | None = None,
             llm_options: dict | None = None) -> Re2LLMApp:
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
                       llm_options=dict(llm_options or {}))
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
