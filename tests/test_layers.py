"""The package's floors hold: import-linter's contracts in ``pyproject.toml`` are kept.

The contracts name the floors top to bottom (``cli`` ... ``errors``), forbid import circles
between the modules of a package (one named exception: the ``Dataset`` dispatch of
``data/release.py``), and keep the LLM layer's facade and leaves.  import-linter reads every
import statement, at module level and inside functions.  The second test plants imports in a
copy of the package and sees the contracts break, so a kept contract means something.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    cmd = [str(LINT)] if LINT.exists() else [sys.executable, "-c",
                                             "from importlinter.cli import lint_imports_command;"
                                             "lint_imports_command()"]
    return subprocess.run(cmd + ["--no-cache", "--config", str(root / "pyproject.toml")],
                          cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=300)


def test_the_contracts_are_kept():
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Contracts: 7 kept, 0 broken." in out.stdout, out.stdout


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    shutil.copytree(ROOT / "re2llm_tui", root / "re2llm_tui",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _plant(path: Path, text: str) -> None:
    path.write_text(path.read_text() + "\n\n" + text)


def test_an_upward_import_inside_a_function_breaks_the_floors(tmp_path):
    root = _copy(tmp_path)
    assert _lint(root).returncode == 0                 # the copy is as good as the tree
    _plant(root / "re2llm_tui" / "store" / "runs.py",
           "def _planted():\n    from re2llm_tui.cli import common  # noqa: F401\n")
    out = _lint(root)
    assert out.returncode != 0
    assert "floors: imports go down BROKEN" in out.stdout, out.stdout
    assert "re2llm_tui.store.runs -> re2llm_tui.cli.common" in out.stdout, out.stdout


def test_a_circle_between_siblings_breaks_the_contract(tmp_path):
    root = _copy(tmp_path)
    # store.calls is imported by store... make one of them import back: a circle on one floor
    _plant(root / "re2llm_tui" / "store" / "calls.py",
           "def _planted():\n    from re2llm_tui.store import runs  # noqa: F401\n")
    _plant(root / "re2llm_tui" / "store" / "runs.py",
           "def _planted():\n    from re2llm_tui.store import calls  # noqa: F401\n")
    out = _lint(root)
    assert out.returncode != 0
    assert "no import circle between siblings BROKEN" in out.stdout, out.stdout
    assert "floors: imports go down KEPT" in out.stdout, out.stdout


def test_a_job_control_that_reaches_a_screen_breaks_its_contract(tmp_path):
    root = _copy(tmp_path)
    _plant(root / "re2llm_tui" / "tui" / "controls" / "training.py",
           "def _planted():\n    from re2llm_tui.tui.screens import training  # noqa: F401\n")
    out = _lint(root)
    assert out.returncode != 0
    assert "job controls import no screen, widget or app BROKEN" in out.stdout, out.stdout


def test_a_new_root_module_must_be_given_a_floor(tmp_path):
    root = _copy(tmp_path)
    (root / "re2llm_tui" / "stray.py").write_text("X = 1\n")
    out = _lint(root)
    assert out.returncode != 0
    assert "stray" in out.stdout + out.stderr


def test_the_stores_own_the_sql_of_the_reward_and_call_tables():
    """Every statement on ``reward_outcomes`` and ``calls`` lives in ``store/`` (the LLM
    cache, which writes ``calls``, apart): a query elsewhere is a second owner to drift."""
    import re

    sql = re.compile(r"(FROM|INTO|JOIN|UPDATE)\s+(reward_outcomes|calls)\b", re.I)
    owners = {ROOT / "re2llm_tui" / "llm" / "cache.py"}
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}"
             for p in sorted((ROOT / "re2llm_tui").rglob("*.py"))
             if p.parent.name != "store" and p not in owners
             for m in sql.finditer(p.read_text(encoding="utf-8"))]
    assert found == []


def test_the_knowledge_base_has_one_public_api():
    """:class:`KnowledgeBase` is the KB's API: no public function of ``kb/store.py`` takes
    the workspace (what remains are text helpers and reading a hints file)."""
    import inspect

    from re2llm_tui.kb import store

    public = [name for name, f in vars(store).items()
              if inspect.isfunction(f) and f.__module__ == store.__name__
              and not name.startswith("_")
              and next(iter(inspect.signature(f).parameters), None) == "db"]
    assert public == []
    assert {"hints", "get", "actions", "add", "edit", "accept", "undo",
            "import_file"} <= set(vars(store.KnowledgeBase))
