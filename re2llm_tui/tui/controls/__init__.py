"""The workbench's job controls: plain classes, no Textual widget or screen.

:class:`~.training.TrainingControl` and :class:`~.evaluation.EvaluationControl` start, pause,
resume, stop and watch the spawned training and evaluation processes and keep what their
screens show; :class:`~.preflight.CostPreflight` estimates a priced job before it starts.
They talk to the app only through a :class:`~.host.Host` (post a message, notify, hop to
the UI thread, open a workspace connection): the app is one host, a test's recorder another.
"""

from re2llm_tui.tui.controls.evaluation import EvaluationControl
from re2llm_tui.tui.controls.host import Host
from re2llm_tui.tui.controls.preflight import CostPreflight
from re2llm_tui.tui.controls.training import TrainingControl

__all__ = ["CostPreflight", "EvaluationControl", "Host", "TrainingControl"]
