"""ibsim's modules import one another in one direction and only through public names.

Every import counts, including those under ``TYPE_CHECKING`` and inside functions: a cycle
there is still a cycle for import-linter and for a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "ibsim"


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(imported ibsim module, names taken from it) for every import in ``path``."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "ibsim":
                found += [(f"ibsim.{a.name}", []) for a in node.names]
            elif node.module.startswith("ibsim."):
                found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("ibsim.")]
    return found


def _graph() -> dict[str, set[str]]:
    modules = {f"ibsim.{p.stem}" for p in PACKAGE.glob("*.py")}
    return {
        f"ibsim.{p.stem}": {m for m, _ in _imports(p) if m in modules and m != f"ibsim.{p.stem}"}
        for p in PACKAGE.glob("*.py")
    }


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a path (empty when there is none)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_ibsim_modules_form_no_import_cycle() -> None:
    graph = _graph()
    assert graph.get("ibsim.server")  # the walk saw real imports
    assert _cycle(graph) == []


def test_the_connection_side_never_imports_the_server() -> None:
    graph = _graph()
    for module in ("ibsim.session", "ibsim.handlers", "ibsim.streams", "ibsim.control"):
        assert "ibsim.server" not in graph[module], module
    assert "ibsim.session" not in graph["ibsim.streams"]


def test_no_module_imports_another_modules_private_names() -> None:
    private = [
        (p.name, module, name)
        for p in PACKAGE.glob("*.py")
        for module, names in _imports(p)
        for name in names
        if name.startswith("_")
    ]
    assert private == []


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
