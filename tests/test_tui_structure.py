"""The TUI's structure: screens read through the stores (no SQL, no ``importlib`` in
``re2llm_tui/tui``) and Textual's private attributes are touched only in
:mod:`re2llm_tui.tui.textual_compat`.  Who imports whom (the help screen imports nothing of
the TUI): the import-linter contracts in ``pyproject.toml`` (tests/test_layers.py).
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import re2llm_tui.tui

TUI_DIR = Path(re2llm_tui.tui.__file__).parent
COMPAT = TUI_DIR / "textual_compat.py"
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|PRAGMA)\s")
SQL_CALLS = {"execute", "executemany", "executescript"}


def _parse(source: str, filename: str = "<unknown>") -> ast.AST:
    """``ast.parse``, robust to a CPython 3.11 bug: "SystemError: AST constructor recursion
    depth mismatch" when the AST module state is entered again while a tree is built (seen
    once in a full run, after earlier tests left litellm's logging tasks to be finalized).
    The garbage collector is off while parsing and a failed parse is tried again."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        for attempt in range(3):
            try:
                return ast.parse(source, filename=filename)
            except SystemError:
                if attempt == 2:
                    raise
    finally:
        if enabled:
            gc.enable()
    raise AssertionError("unreachable")


def _modules() -> list[Path]:
    return sorted(TUI_DIR.rglob("*.py"))


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(TUI_DIR.parent.parent)}:{node.lineno}"


def test_the_scan_sees_every_tui_module():
    names = {p.relative_to(TUI_DIR).as_posix() for p in _modules()}
    assert {"app.py", "views.py", "textual_compat.py", "screens/_base.py",
            "screens/knowledge_base.py", "screens/help.py"} <= names


def test_no_sql_in_the_tui():
    """No SQL text (docstrings may name SQL in prose) and no ``execute`` call on a
    connection: every read goes through a store of :mod:`re2llm_tui.store` or the KB."""
    found = []
    for path in _modules():
        tree = _parse(path.read_text(), filename=str(path))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    id(node) not in docs and SQL.search(node.value):
                found.append(f"{_where(path, node)}: {node.value[:60]!r}")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in SQL_CALLS:
                found.append(f"{_where(path, node)}: .{node.func.attr}(...)")
    assert not found, "SQL in the TUI (move it to a store):\n" + "\n".join(found)


def test_the_sql_check_would_catch_sql():
    tree = _parse('x = 1\ndef f(db):\n    """SELECT in prose is fine."""\n'
                     '    return db.execute("PRAGMA data_version")\n')
    docs = _docstrings(tree)
    hits = [n for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str) and id(n) not in docs and SQL.search(n.value)]
    assert len(hits) == 1


def test_no_importlib_in_the_tui():
    found = []
    for path in _modules():
        tree = _parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "importlib"
                                                    for a in node.names):
                found.append(_where(path, node))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == \
                    "importlib":
                found.append(_where(path, node))
            elif isinstance(node, ast.Name) and node.id in ("__import__", "importlib"):
                found.append(_where(path, node))
    assert not found, found


def _textual_private_names() -> set[str]:
    """Private names of the Textual classes the workbench subclasses or drives: class
    attributes and methods, and ``self._x`` attributes their source sets or reads."""
    from textual import events
    from textual.app import App
    from textual.command import Provider
    from textual.screen import ModalScreen
    from textual.widgets import DataTable, Footer, Input, Select, Static, TextArea
    from textual_plotext import PlotextPlot

    classes = set()
    for top in (App, ModalScreen, Footer, Static, DataTable, Input, Select, TextArea,
                PlotextPlot, Provider, events.ScreenResume):
        classes.update(c for c in top.__mro__ if c.__module__.split(".")[0].startswith("textual"))
    names = set()
    for cls in classes:
        names.update(n for n in vars(cls) if n.startswith("_") and not n.startswith("__"))
        try:
            src = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        names.update(re.findall(r"self\.(_[a-z]\w*)", src))
    return names


def test_textual_private_attributes_only_in_the_compat_module():
    """``x._name`` where ``_name`` is private to a Textual class the TUI uses (read, set or
    redefined in a class body) appears only in textual_compat.  Handler methods named
    ``_on_<event>`` follow Textual's dispatch convention (see textual_compat's docstring)."""
    private = _textual_private_names()
    assert {"_screen_stacks", "_css_update_count", "_bindings_ready",
            "_notifications"} <= private          # the scan sees what it must
    found = []
    for path in _modules():
        if path == COMPAT:
            continue
        tree = _parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in private:
                found.append(f"{_where(path, node)}: .{node.attr}")
            elif isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        names = [] if stmt.name.startswith("_on_") else [stmt.name]
                    elif isinstance(stmt, ast.Assign):
                        names = [t.id for t in stmt.targets if isinstance(t, ast.Name)]
                    elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                        names = [stmt.target.id]
                    else:
                        names = []
                    found += [f"{_where(path, stmt)}: {node.name}.{n}" for n in names
                              if n in private]
    assert not found, "Textual private API outside textual_compat:\n" + "\n".join(found)


def test_the_compat_module_names_the_checked_version():
    from importlib.metadata import version

    from re2llm_tui.tui import textual_compat

    assert textual_compat.CHECKED_WITH == version("textual"), (
        "Textual changed: re-check every function of re2llm_tui/tui/textual_compat.py "
        "against its source, then update CHECKED_WITH")


# --------------------------------------------------------------------------- the stores

def test_reflections_of_has_one_implementation():
    from re2llm_tui.exploration import reflection
    from re2llm_tui.store import reflections

    assert reflection.reflections_of is reflections.reflections_of


def test_change_keys_follow_the_data(workspace):
    from re2llm_tui.store import changes, runs
    from re2llm_tui.store.workspace import open_workspace

    db = open_workspace(workspace)
    other = open_workspace(workspace)
    try:
        assert changes.change_key(db, ()) is None
        with pytest.raises(KeyError):
            changes.change_key(db, ("nope",))
        before = changes.change_key(db, (changes.RUNS, changes.KB))
        kb_before = changes.change_key(db, (changes.KB,))
        version = changes.data_version(db)
        run_id = runs.create_run(other, name="r", kind="recommend", dataset="games",
                                 split="train")
        assert changes.data_version(db) != version      # another connection committed
        after = changes.change_key(db, (changes.RUNS, changes.KB))
        assert after != before and len(after) == len(before) == 5
        assert changes.change_key(db, (changes.KB,)) == kb_before
        runs.add_run_item(other, run_id, "train-0001", ranking=[3, 1], target_rank=2)
        assert changes.change_key(db, (changes.RUNS,)) != after[:3]
    finally:
        db.conn.close()
        other.conn.close()


def test_session_outcomes_and_baseline_ranks(workspace):
    from re2llm_tui.store import runs
    from re2llm_tui.store.workspace import open_workspace
    from re2llm_tui.tui import views

    db = open_workspace(workspace)
    try:
        base = runs.create_run(db, name="b", kind="recommend", dataset="games", split="train")
        runs.add_run_item(db, base, "s1", ranking=[2, 0], target_rank=12, hallucinations=[])
        hinted = runs.create_run(db, name="h", kind="recommend", dataset="games",
                                 split="train", hint_id=4)
        runs.add_run_item(db, hinted, "s1", ranking=[0, 2], target_rank=1)
        ev = runs.create_run(db, name="e", kind="evaluate", dataset="games", split="train",
                             params={"policy": "agent (argmax)"})
        runs.add_run_item(db, ev, "s1", ranking=[0], target_rank=1)
        assert runs.baseline_ranks(db, "games", "train") == ({"s1": 12}, 1)
        rows = runs.session_outcomes(db, "games", "s1")
        assert [r["id"] for r in rows] == [base, hinted, ev]
        assert rows[0]["ranking"] == [2, 0] and rows[2]["params"] == {"policy": "agent (argmax)"}
        rankings = views.stored_rankings(rows)
        assert [r.label for r in rankings] == [f"#{base} no hint (recommend)",
                                               f"#{hinted} hint 4", f"#{ev} agent (argmax)"]
        chosen, others = views.split_baseline_hinted(rankings)
        assert chosen.run_id == base and [o.run_id for o in others] == [ev, hinted]
    finally:
        db.conn.close()


def test_no_sqlite_import_in_the_tui():
    """The TUI opens the workspace through the store (``open_workspace``), never sqlite3."""
    for path in _modules():
        tree = _parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert all(a.name != "sqlite3" for a in node.names), _where(path, node)
            if isinstance(node, ast.ImportFrom):
                assert node.module != "sqlite3", _where(path, node)


def test_debiased_ema_starts_at_the_data_and_follows_it():
    from re2llm_tui.tui.monitor import xs_ema

    xs, ys = xs_ema([1, 2, 3, 4], [1.0, 1.0, 1.0, 1.0], 0.9)
    assert ys == [1.0, 1.0, 1.0, 1.0] or all(abs(y - 1.0) < 1e-12 for y in ys)
    _, ys = xs_ema([1, 2, 3], [0.0, 1.0, 1.0], 0.5)
    assert ys[0] == 0.0 and 0.0 < ys[1] < 1.0 and ys[1] < ys[2] < 1.0
    assert xs_ema([1, 2], [3.0, 5.0], 0.0)[1] == [3.0, 5.0]


def test_no_hasattr_probing_in_the_tui():
    """Screens learn of changes from one message (``WorkspaceChanged``), not from the app
    probing each screen for the methods it might have (``hasattr``)."""
    found = []
    for path in _modules():
        tree = _parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                    node.func.id == "hasattr":
                found.append(_where(path, node))
    assert found == []
