"""Typed messages that workers and the training poller post to the app.

Workers run in threads; ``post_message`` is thread-safe.  Each message carries what the UI
needs to show the result, so handlers never query from another thread's connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message


class KBChanged(Message):
    """A KB change finished (added, edited, accepted, merged, undone, imported ...)."""

    def __init__(self, detail: str, hint_ids: list[int] | None = None) -> None:
        super().__init__()
        self.detail = detail
        self.hint_ids = hint_ids or []


class RecommendFinished(Message):
    """``recommend`` finished for one session (a run was stored)."""

    def __init__(self, session_id: str, run_id: int | None, rank: int | None,
                 hint_id: int | None, detail: str = "") -> None:
        super().__init__()
        self.session_id = session_id
        self.run_id = run_id
        self.rank = rank
        self.hint_id = hint_id
        self.detail = detail


class ReflectionFinished(Message):
    """A reflection of one session finished."""

    def __init__(self, session_id: str, reflection_id: int | None, detail: str = "") -> None:
        super().__init__()
        self.session_id = session_id
        self.reflection_id = reflection_id
        self.detail = detail


class EvaluationFinished(Message):
    """The comparison of policies finished: ``rows`` = {policy: metrics summary}."""

    def __init__(self, rows: dict[str, dict], paired: dict[str, dict] | None = None,
                 detail: str = "") -> None:
        super().__init__()
        self.rows = rows
        self.paired = paired or {}
        self.detail = detail


@dataclass
class TrainingBatch:
    """Scalars polled from the training process since the last poll (merged bursts)."""

    scalars: list[dict] = field(default_factory=list)
    state: str = "running"  # running | paused | stopped | finished | failed
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class TrainingProgress(Message):
    """New training scalars.  Bursts merge (``can_replace``): when a newer one is already
    queued behind this one, the newer absorbs this one's scalars and this one is dropped, so
    a slow UI handles one message per burst and loses no point."""

    def __init__(self, batch: TrainingBatch) -> None:
        super().__init__()
        self.batch = batch

    def can_replace(self, message: Message) -> bool:
        # Textual asks the message being handled whether the queued ``message`` may supersede it
        if isinstance(message, TrainingProgress):
            message.batch.scalars[:0] = self.batch.scalars
            return True
        return False


class TrainingStateChanged(Message):
    """The training process's state, phase (``table`` / ``ppo``), step or calls changed."""

    def __init__(self, state: str, detail: str = "", *, phase: str = "", step: int = 0,
                 llm_calls: int = 0) -> None:
        super().__init__()
        self.state = state
        self.detail = detail
        self.phase = phase
        self.step = step
        self.llm_calls = llm_calls


class EvaluationProgress(Message):
    """The evaluation process's state and, when given, its outcome progress (a
    :class:`~re2llm_tui.utilization.rewards.PrefillProgress` as a dict)."""

    def __init__(self, state: str, progress: dict | None, detail: str = "") -> None:
        super().__init__()
        self.state = state
        self.progress = progress
        self.detail = detail


class PlanProposed(Message):
    """A first training run was sized (the demo model): the app asks whether to start it."""

    def __init__(self, plan: Any) -> None:
        super().__init__()
        self.plan = plan


class CostEstimated(Message):
    """A priced job's cost preflight is ready: the app shows ``estimate`` and calls
    ``start`` when the user confirms."""

    def __init__(self, command: str, estimate: Any, start: Any) -> None:
        super().__init__()
        self.command = command
        self.estimate = estimate
        self.start = start


#: what a :class:`WorkspaceChanged` may name
CHANGES = ("data", "kb", "runs", "reflections", "split", "evaluation")


class WorkspaceChanged(Message, bubble=False):
    """Something the screens show has changed; the app sends one to every mounted screen.

    ``what``: ``data`` (another connection committed: reload if this screen's data changed),
    ``kb`` (a hint was added, edited, accepted, merged, undone ...), ``runs`` (a run was
    stored), ``reflections``, ``split`` (the browsed split was toggled) or ``evaluation``
    (the evaluation's progress or result).  A hidden screen catches up when shown again."""

    def __init__(self, what: str, detail: str = "") -> None:
        super().__init__()
        if what not in CHANGES:
            raise ValueError(f"unknown change {what!r}")
        self.what = what
        self.detail = detail
