"""What the workbench was started with (:class:`AppConfig`) and how it words a failure
(:func:`error_line`).  No Textual: the app, its screens and the job controls read these."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from re2llm_tui.data.dataset import Dataset


def error_line(exc: BaseException) -> str:
    """One line for a notification: a :class:`~re2llm_tui.errors.UserError`'s own words,
    anything else prefixed with its type."""
    from re2llm_tui.errors import UserError

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
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
    #: ``run --samples N``: every ranking the workbench asks for (recommend, the reward
    #: table, the evaluation) is the mean of N samples (a model that cannot decode greedily)
    samples: int = 1

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
