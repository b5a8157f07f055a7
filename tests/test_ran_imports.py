"""The modules of ``fercurate.ran`` import one another in one direction only (no cycles, lazy imports included)."""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import fercurate.ran

RAN = Path(fercurate.ran.__file__).parent
MODULES = sorted(p.stem for p in RAN.glob("*.py") if p.stem != "__init__")


def _imports(module: str) -> set[str]:
    """The ``fercurate.ran`` modules ``module`` imports anywhere in its source (top level or in functions)."""
    tree = ast.parse((RAN / f"{module}.py").read_text(), filename=f"{module}.py")
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom):  # relative imports
            base = "fercurate.ran" if node.level == 1 else "fercurate"
            names = [f"{base}.{node.module}" if node.module else base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["fercurate", "ran"] and len(parts) > 2 and parts[2] in MODULES and parts[2] != module:
                found.add(parts[2])
    return found


def import_graph() -> dict[str, set[str]]:
    return {m: _imports(m) for m in MODULES}


def test_the_import_graph_has_no_cycles() -> None:
    graph = import_graph()
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle inside fercurate.ran: {' -> '.join(exc.args[1])}") from exc
    assert set(order) == set(MODULES)


def test_the_layers_are_where_the_design_puts_them() -> None:
    graph = import_graph()
    assert graph["config"] == set(), "config is the root: it imports no other fercurate.ran module"
    for low in ("crops", "loss", "backbone"):
        assert graph[low] <= {"config"}, f"{low} imports {graph[low]}"
    assert "train" not in set().union(*(deps for m, deps in graph.items() if m != "train")), "nothing imports train"


def test_the_cycle_check_catches_a_cycle() -> None:
    graph = {**import_graph(), "config": {"train"}}
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError:
        return
    raise AssertionError("a config -> train edge should make a cycle")


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    """Each module imported first (the others unloaded), as a user's script would: no ImportError from a cycle."""
    code = (
        "import importlib, sys\n"
        "import torch  # loaded once: only fercurate's modules are reloaded\n"
        f"for name in {MODULES!r}:\n"
        "    for key in [k for k in sys.modules if k.startswith('fercurate')]:\n"
        "        del sys.modules[key]\n"
        "    importlib.import_module('fercurate.ran.' + name)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
