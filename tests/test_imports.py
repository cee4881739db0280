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
    bench) or the commands: besides itself only the error type, the YAML loader, file helpers and the video
    encoder (the fake camera writes its rehearsal clip with it)."""
    allowed = ("evo1cli.robots", "evo1cli.errors", "evo1cli.yamlconfig", "evo1cli.fileio", "evo1cli.data.video")
    graph = imports()
    found = {t for m, ts in graph.items() if m.startswith("evo1cli.robots") for t in ts}
    assert {t for t in found if not t.startswith(allowed)} == set()
    assert any(m.startswith("evo1cli.deploy") for m in graph)  # the walk sees the package it keeps apart
