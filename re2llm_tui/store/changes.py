"""Cheap signs that the workspace's data changed, for views that reload only when it did.

* :func:`data_version`: SQLite's ``PRAGMA data_version`` of one connection; it changes when
  *another* connection committed (a CLI job, a worker thread, the training process).  One
  pragma, no table read: cheap enough to poll every second.
* :func:`change_key`: a tuple of ``MAX()`` / ``COUNT()`` lookups over the tables of the
  named :data:`SOURCES`, read in one ``SELECT``; equal keys mean nothing a view of those
  tables shows has changed (new rows, rows finishing, KB changes).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

RUNS = "runs"
REFLECTIONS = "reflections"
KB = "kb"
REWARDS = "rewards"
TRAIN_RUNS = "train_runs"

#: source name -> SQL scalar expressions whose values change when that data does
SOURCES: dict[str, tuple[str, ...]] = {
    # a run or an outcome added, a run finishing, a run deleted (`runs rm`)
    RUNS: ("(SELECT MAX(id) FROM runs)", "(SELECT MAX(rowid) FROM run_items)",
           "(SELECT COUNT(*) || ':' || COALESCE(SUM(status='running'), 0) FROM runs)"),
    # a reflection added or finishing, a turn stored
    REFLECTIONS: ("(SELECT MAX(id) FROM reflections)",
                  "(SELECT COUNT(*) FROM reflections WHERE status='running')",
                  "(SELECT MAX(rowid) FROM reflection_turns)"),
    # every KB change writes hint_history; a hint added or removed
    KB: ("(SELECT MAX(seq) FROM hint_history)", "(SELECT COUNT(*) FROM hints)"),
    # a reward stored in the reward table
    REWARDS: ("(SELECT MAX(rowid) FROM reward_outcomes)",
              "(SELECT COUNT(*) FROM reward_outcomes)"),
    # a training run added, changing status or deleted (GROUP_CONCAT has one per run)
    TRAIN_RUNS: ("(SELECT MAX(id) || ':' || GROUP_CONCAT(status) FROM train_runs)",),
}


def data_version(db) -> int:
    """This connection's ``PRAGMA data_version`` (changes when another connection commits)."""
    return int(db.execute("PRAGMA data_version").fetchone()[0])


@cache
def _key_sql(sources: tuple[str, ...]) -> str:
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise KeyError(f"unknown change source(s): {', '.join(unknown)}")
    return "SELECT " + ", ".join(e for s in sources for e in SOURCES[s])


def change_key(db, sources: Sequence[str]) -> tuple | None:
    """The values of the ``sources``' expressions, in one query; ``None`` for no sources."""
    sources = tuple(sources)
    if not sources:
        return None
    return tuple(db.execute(_key_sql(sources)).fetchone())
