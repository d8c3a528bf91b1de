"""A restricted unpickler for the release's ``example_*.txt`` files.

The release stores sessions as Python pickles.  A pickle can execute arbitrary code when
loaded, so these files are read only through :func:`load_id_sessions_pickle`, whose
unpickler resolves *no* global at all: lists, tuples and ints are built by opcodes that
never call ``find_class``, so anything else (a class, a function, ``os.system``) is
refused before it can run.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

from re2llm_tui.errors import DataError
from re2llm_tui.safe_files import read_input


class _NoGlobalsUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")

    def persistent_load(self, pid):  # pragma: no cover - never legitimate here
        raise pickle.UnpicklingError("refusing persistent ids")


def _check_plain(obj, depth: int = 0) -> None:
    """Admit only list, tuple and int (bool is an int subclass: refused too)."""
    if depth > 4:
        raise pickle.UnpicklingError("nesting deeper than expected")
    if type(obj) is int:
        return
    if type(obj) in (list, tuple):
        for item in obj:
            _check_plain(item, depth + 1)
        return
    raise pickle.UnpicklingError(f"unexpected object of type {type(obj).__name__}")


def restricted_loads(data: bytes):
    """Unpickle bytes admitting only lists, tuples and ints."""
    obj = _NoGlobalsUnpickler(io.BytesIO(data)).load()
    _check_plain(obj)
    return obj


IdSession = tuple[list[int], int, list[int]]


def load_id_sessions_pickle(path: Path, n_candidates: int = 50, *,
                            limit: int | None = None) -> list[IdSession]:
    """Read ``(session_item_ids, target_id, candidate_ids)`` tuples from a release pickle
    (read whole: a pickle cannot be read in parts; ``limit``: its size bound, default
    :data:`~re2llm_tui.safe_files.DEFAULT_INPUT_LIMIT`)."""
    if limit is None:
        data = read_input(path)
    else:
        data = read_input(path, limit=limit,
                          what="a pickle (read whole; JSON lines have no file limit)")
    try:
        obj = restricted_loads(data)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
            KeyError, AttributeError, MemoryError, OverflowError) as exc:
        raise DataError(f"{path}: not a safe session pickle ({exc or type(exc).__name__})") from None
    if not isinstance(obj, list):
        raise DataError(f"{path}: expected a list of sessions, got {type(obj).__name__}")
    out: list[IdSession] = []
    for i, row in enumerate(obj):
        ok = (
            isinstance(row, (tuple, list)) and len(row) == 3
            and isinstance(row[0], list) and all(type(x) is int for x in row[0])
            and type(row[1]) is int
            and isinstance(row[2], list) and len(row[2]) == n_candidates
            and all(type(x) is int for x in row[2])
        )
        if not ok:
            raise DataError(
                f"{path}: session {i} is not (item_ids, target_id, {n_candidates} candidate_ids)")
        out.append((list(row[0]), row[1], list(row[2])))
    return out
