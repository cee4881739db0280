"""The dataset layouts as adapters: evo1cli.data's modules import each other without a cycle, types.py at the
bottom; only format.py picks a layout (it alone imports v21.py and v30.py), and a layout survives pickling."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest

from evo1cli.data import v21, v30
from evo1cli.data.format import LAYOUTS, layout_for
from evo1cli.errors import Evo1Error

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


def test_a_version_picks_its_layout_and_evo1_writes_v21_by_default():
    assert set(LAYOUTS) == {"v2.1", "v3.0"}
    assert layout_for("v2.1") is v21.LAYOUT and layout_for("v3.0") is v30.LAYOUT and layout_for(None) is v21.LAYOUT
    with pytest.raises(Evo1Error) as err:
        layout_for("v2.0", field="--to")
    assert err.value.field == "--to" and "v2.1, v3.0" in err.value.message


@pytest.mark.parametrize("version", ["v2.1", "v3.0"])
def test_a_dataset_keeps_its_layout_object_through_pickling(tmp_path, version):
    """A DataLoader pickles the metadata for its workers: `meta.layout is layout` must still hold there."""
    from conftest import make_dataset

    meta = pickle.loads(pickle.dumps(make_dataset(tmp_path / "ds", lengths=(3,), version=version)))
    assert meta.layout is layout_for(version) and meta.version == version
    assert meta.data_file(0).is_file()
