"""The LLM layer's modules import each other without a circle (function-level imports too).

Each module of ``re2llm_tui/llm`` has one job (see :mod:`re2llm_tui.llm.client`); a circle
would mean two jobs that cannot be read, tested or loaded apart.
"""

from __future__ import annotations

import ast
from pathlib import Path

import re2llm_tui.llm

PKG = "re2llm_tui.llm"
LLM_DIR = Path(re2llm_tui.llm.__file__).parent
MODULES = {p.stem for p in LLM_DIR.glob("*.py")}


def _targets(node: ast.AST) -> set[str]:
    """The llm modules an import statement loads (``__init__`` for the package itself)."""
    if isinstance(node, ast.Import):
        out = set()
        for alias in node.names:
            if alias.name == PKG:
                out.add("__init__")
            elif alias.name.startswith(PKG + "."):
                out.add(alias.name.split(".")[2])
        return out
    if not isinstance(node, ast.ImportFrom):
        return set()
    if node.level:  # relative: only ``from . import x`` / ``from .x import y`` stay inside llm/
        base = PKG if node.level == 1 else None
        full = base if not node.module else f"{base}.{node.module}" if base else None
    else:
        full = node.module
    if full == PKG:
        # ``from re2llm_tui.llm import local``: the module; any other name: the package
        return {a.name if a.name in MODULES else "__init__" for a in node.names}
    if full and full.startswith(PKG + "."):
        return {full.split(".")[2]}
    if full == "re2llm_tui" and any(a.name == "llm" for a in node.names):
        return {"__init__"}
    return set()


def import_graph() -> dict[str, set[str]]:
    """module -> llm modules it imports anywhere in its body (top level or in functions)."""
    graph = {}
    for name in sorted(MODULES):
        tree = ast.parse((LLM_DIR / f"{name}.py").read_text(), filename=f"{name}.py")
        deps = set().union(*(_targets(n) for n in ast.walk(tree))) - {name}
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    # models imports local and ranking only inside functions (check_model, default_rank_method)
    assert {"local", "ranking"} <= graph["models"]
    assert graph["__init__"] == {"client"}


def test_find_cycle_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_circle_in_llm():
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import circle in re2llm_tui/llm: " + " -> ".join(cycle)


def test_only_the_package_imports_the_client():
    """The facade composes the pieces; no piece reaches back into it."""
    importers = sorted(m for m, deps in import_graph().items() if "client" in deps)
    assert importers == ["__init__"]


def test_shared_helpers_live_in_leaf_modules():
    """What the local engine and the ranking methods need comes from modules that import
    nothing of the LLM layer."""
    graph = import_graph()
    assert graph["litellm_import"] == set() and graph["decoding"] == set()
    assert graph["ranking"] <= {"decoding", "parsing"}
