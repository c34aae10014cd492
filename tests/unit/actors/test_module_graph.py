"""The gateway's modules import each other in one direction and share no private names."""

from __future__ import annotations

import ast
from pathlib import Path

import actors

ACTORS = Path(actors.__file__).parent


def _imports() -> dict[str, set[tuple[str, str]]]:
    """``{module: {(imported actors module, name)}}``, TYPE_CHECKING blocks included."""
    graph: dict[str, set[tuple[str, str]]] = {}
    for path in ACTORS.glob("*.py"):
        found: set[tuple[str, str]] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("actors"):
                for alias in node.names:
                    if node.module == "actors":  # from actors import ib_convert
                        found.add((f"actors.{alias.name}", ""))
                    else:
                        found.add((node.module or "", alias.name))
            elif isinstance(node, ast.Import):
                found |= {(a.name, "") for a in node.names if a.name.startswith("actors.")}
        graph[f"actors.{path.stem}"] = found
    return graph


def test_actors_modules_form_no_import_cycle() -> None:
    graph = {m: {dep for dep, _ in deps} for m, deps in _imports().items()}
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        if state.get(module) == 2:
            return
        assert state.get(module) != 1, "import cycle: " + " -> ".join([*path, module])
        state[module] = 1
        for dep in sorted(graph.get(module, ())):
            visit(dep, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        visit(module, [])
    assert "actors.gateway_service" not in graph["actors.bar_streams"]
    assert "actors.gateway_service" not in graph["actors.gateway_orders"]


def test_actors_modules_import_no_underscore_names_of_each_other() -> None:
    private = {
        (module, name)
        for module, deps in _imports().items()
        for dep, name in deps
        if name.startswith("_")
    }
    assert private == set()
