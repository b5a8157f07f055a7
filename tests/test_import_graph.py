"""fercurate's modules import one another in one direction only: no cycles anywhere in the package.

Every import counts, top level or inside a function (a lazy import only hides a cycle from Python, not
from a reader). ``from fercurate.report import figures`` is an edge to the submodule
``fercurate.report.figures``; ``from fercurate.report import build_report`` is an edge to the package's
``__init__``, which is a cycle when that ``__init__`` imports the module doing the importing.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import fercurate

PACKAGE = Path(fercurate.__file__).parent
LONG_MODULE_LINES = 500  # a module longer than this says why in its docstring ("long because ...")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The longest fercurate module that ``name`` names (a module, or an attribute of one)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            resolved = _resolve(target)
            if resolved and resolved != module:
                found.add(resolved)
    return found


def import_graph() -> dict[str, set[str]]:
    return {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_the_package_has_no_import_cycles() -> None:
    groups = _cycles(import_graph())
    assert not groups, "import cycles:\n" + "\n".join(" <-> ".join(g) for g in groups)
    list(TopologicalSorter(import_graph()).static_order())  # and graphlib agrees


def test_the_cycle_check_catches_a_cycle_through_a_lazy_import() -> None:
    graph = {**import_graph(), "fercurate.errors": {"fercurate.cli"}}
    assert _cycles(graph), "errors -> cli should close a cycle (the CLI imports errors)"
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError:
        return
    raise AssertionError("graphlib should see the same cycle")


def test_a_package_init_that_reexports_is_an_edge_target() -> None:
    report_build = _imports("fercurate.cli.demo", MODULES["fercurate.cli.demo"])
    assert report_build, "cli.demo imports something from fercurate"
    assert _resolve("fercurate.report.build_report") == "fercurate.report"
    assert _resolve("fercurate.ran.model.RAN") == "fercurate.ran.model"


def test_long_modules_say_why() -> None:
    unexplained = []
    for name, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").count("\n")
        if lines > LONG_MODULE_LINES:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
            if "long because" not in doc.lower():
                unexplained.append(f"{name} ({lines} lines)")
    assert not unexplained, (
        f"modules over {LONG_MODULE_LINES} lines whose docstring does not say why ('long because ...'): "
        + ", ".join(unexplained)
    )


def package_graph() -> dict[str, set[str]]:
    """The import graph between fercurate's top-level parts (``fercurate.report``, ``fercurate.quality``, ...)."""

    def top(name: str) -> str:
        return ".".join(name.split(".")[:2])

    graph: dict[str, set[str]] = {}
    for module, deps in import_graph().items():
        graph.setdefault(top(module), set()).update(top(d) for d in deps if top(d) != top(module))
    return graph


def test_the_packages_have_no_import_cycles() -> None:
    groups = _cycles(package_graph())
    assert not groups, "import cycles between packages:\n" + "\n".join(" <-> ".join(g) for g in groups)
