"""The strategies package imports in one direction and keeps its private names private.

The graph comes from the ``import`` statements of ``strategies/*.py`` (top level and inside
functions alike), so a cycle hidden behind a lazy import counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "strategies"


def modules() -> dict[str, ast.Module]:
    return {
        path.stem: ast.parse(path.read_text(), filename=str(path))
        for path in sorted(PACKAGE.glob("*.py"))
    }


def edges(tree: ast.Module, names: set[str]) -> set[str]:
    """Return the strategies modules that ``tree`` imports (``__init__`` for the package)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "strategies":
                    out.add(parts[1] if len(parts) > 1 else "__init__")
        elif isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] != "strategies":
                continue
            if len(parts) > 1:
                out.add(parts[1])
                continue
            for alias in node.names:  # from strategies import x: a module or a package name
                out.add(alias.name if alias.name in names else "__init__")
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return one path per back edge found by a depth-first search."""
    found: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    return found


def test_the_cycle_finder_reports_a_two_module_cycle():
    assert cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b", "a"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_strategies_modules_import_each_other_without_cycles():
    trees = modules()
    graph = {name: edges(tree, set(trees)) - {name} for name, tree in trees.items()}
    assert graph["engine"] >= {"batch", "portfolio", "simulation"}  # the walker sees imports
    assert cycles(graph) == []


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_module_imports_or_reads_another_modules_private_names():
    # Private-named modules (``_kernels``) may be imported; their public names may be read.
    trees = modules()
    offences = []
    for name, tree in trees.items():
        aliases: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("strategies"):
                for alias in node.names:
                    if node.module == "strategies" and alias.name in trees:
                        aliases.add(alias.asname or alias.name)
                    elif private(alias.name):
                        offences.append(f"{name}: from {node.module} import {alias.name}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("strategies"):
                        aliases.add(alias.asname or alias.name.split(".")[0])
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and private(node.attr)
            ):
                offences.append(f"{name}: {node.value.id}.{node.attr}")
    assert offences == []
