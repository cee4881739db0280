"""The package's import graph keeps its boundaries: recording only under collect/, drivers blind to their fakes,
robots/ hardware only, the light client free of torch."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "evo1cli"


def imports() -> dict[str, set[str]]:
    """module -> the evo1cli modules it imports anywhere (top level or inside functions)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        found = graph.setdefault(module, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("evo1cli"))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([node.module] if node.module else []))
                if base.startswith("evo1cli"):
                    found.add(base)
                    found.update(f"{base}.{a.name}" for a in node.names)  # a name may be a module
    return graph


def test_only_the_hardware_factory_reaches_the_fakes():
    users = {m for m, targets in imports().items() if any(".robots.fakes" in t for t in targets)}
    assert {u for u in users if not u.startswith("evo1cli.robots.fakes")} == {"evo1cli.robots.session"}


def test_datasets_are_written_only_by_the_data_package_and_the_recorders():
    writers = {m for m, targets in imports().items() if "evo1cli.data.writer" in targets}
    assert all(m.startswith(("evo1cli.data.", "evo1cli.collect.")) for m in writers), writers
    graph = imports()
    assert not any(
        t.startswith("evo1cli.collect") for m, ts in graph.items() if m.startswith("evo1cli.robots") for t in ts
    )


def test_the_client_package_needs_no_torch():
    import subprocess
    import sys

    modules = sorted(m for m in imports() if m.startswith("evo1cli.client"))
    assert {"evo1cli.client.wire", "evo1cli.client.chunks", "evo1cli.client.broker", "evo1cli.client.remote"} <= set(
        modules
    )
    code = f"import sys; import {', '.join(modules)}; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    graph = imports()
    outside = {t for m in modules for t in graph[m] if not t.startswith("evo1cli.client")}
    assert outside == set(), outside
    absolute = [p.name for p in (PACKAGE / "client").glob("*.py") if "import evo1cli" in p.read_text()
                or "from evo1cli" in p.read_text()]  # fmt: skip
    assert absolute == []  # relative imports only: the package ships as-is in the RoboTwin plug-in


def test_robots_is_hardware_only():
    """robots/ knows nothing of policies (client, runtime, model, serving), the loops above it (deploy, collect,
    bench) or the commands: besides itself only the error type, the YAML loader, file helpers, the video
    encoder (the fake camera writes its rehearsal clip with it) and the digital twins' worlds (the simulated
    hardware of `--sim` sits on them)."""
    allowed = ("evo1cli.robots", "evo1cli.errors", "evo1cli.yamlconfig", "evo1cli.fileio", "evo1cli.data.video",
               "evo1cli.sim.twin")  # fmt: skip
    graph = imports()
    found = {t for m, ts in graph.items() if m.startswith("evo1cli.robots") for t in ts}
    assert {t for t in found if not t.startswith(allowed)} == set()
    assert any(m.startswith("evo1cli.deploy") for m in graph)  # the walk sees the package it keeps apart


# The packages bottom-up: a module imports only from its own package or from a lower layer. Packages in one
# layer do not import each other. docs/architecture.md walks the same list.
LAYERS: list[set[str]] = [
    {"evo1cli", "errors", "features"},  # the version, the one error type, the LeRobot keys and padded width
    {"fileio", "yamlconfig"},
    {"model"},
    {"data", "interop", "sim", "client"},
    {"robots"},
    {"collect", "deploy"},
    {"runtime"},
    {"serving", "train", "bench", "sysinfo"},
    {"quickstart", "smoke"},
    {"quickstart_robot"},  # the robot quickstart reuses the quickstart's phase clock
    {"commands"},
    {"__main__"},
]


def package_of(module: str) -> str:
    """`evo1cli.data.v30` -> data; `evo1cli.__version__` (a name in evo1cli/__init__.py) -> evo1cli."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in set().union(*LAYERS) else "evo1cli"


def layer_of(package: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if package in layer)


def test_every_package_has_a_layer():
    packages = {m.split(".")[1] if "." in m else m for m in imports()}
    assert packages == set().union(*LAYERS), packages ^ set().union(*LAYERS)


def test_imports_point_down_only():
    upward = [
        f"{module} -> {target}"
        for module, targets in imports().items()
        for target in targets
        if package_of(module) != package_of(target) and layer_of(package_of(target)) >= layer_of(package_of(module))
    ]
    assert not upward, upward


def test_no_import_cycle_between_modules():
    graph = imports()
    modules = set(graph)

    def resolve(target: str) -> str:  # `from evo1cli.client import wire` imports the module evo1cli.client.wire
        return target if target in modules else target.rpartition(".")[0]

    edges = {m: {resolve(t) for t in ts if resolve(t) in modules and resolve(t) != m} for m, ts in graph.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = 1
        for nxt in sorted(edges[module]):
            if state.get(nxt) == 1:
                return [*path, module, nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, module])):
                return cycle
        state[module] = 2
        return None

    for module in sorted(modules):
        if module not in state and (cycle := visit(module, [])):
            raise AssertionError(" -> ".join(cycle))
