"""evo1cli.data's modules import each other without a cycle, types.py at the bottom, and only format.py picks a
dataset layout (it alone imports v21.py and v30.py)."""

from __future__ import annotations

import ast
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "evo1cli" / "data"


def data_imports() -> dict[str, set[str]]:
    """data module -> the data modules it imports anywhere (top level or inside functions)."""
    modules = {path.stem for path in DATA.glob("*.py") if path.stem != "__init__"}
    graph: dict[str, set[str]] = {}
    for name in modules:
        found = graph.setdefault(name, set())
        for node in ast.walk(ast.parse((DATA / f"{name}.py").read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                targets = [f"evo1cli.data.{node.module or a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                if target.startswith("evo1cli.data.") and target.split(".")[2] in modules:
                    found.add(target.split(".")[2])
        found.discard(name)
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of `graph` (its modules in order, the first repeated at the end), or []."""
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> list[str]:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target, [*path, target])):
                return found
        state[module] = "done"
        return []

    for module in sorted(graph):
        if module not in state and (found := visit(module, [module])):
            return found
    return []


def test_the_cycle_finder_finds_a_cycle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) == []


def test_data_modules_import_each_other_without_a_cycle():
    graph = data_imports()
    assert {"types", "v21", "v30", "format", "reader", "writer"} <= set(graph)
    assert cycle(graph) == []


def test_types_is_the_bottom_and_only_format_chooses_a_layout():
    graph = data_imports()
    assert graph["types"] == set()
    assert {m for m, targets in graph.items() if targets & {"v21", "v30"}} == {"format"}
