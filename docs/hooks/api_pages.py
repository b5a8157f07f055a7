"""MkDocs hook: one API reference page per fercurate package, generated from the package's modules at
build time, so a module added to fercurate is in the reference without editing the docs."""

from __future__ import annotations

import ast
from pathlib import Path

from mkdocs.structure.files import File, Files

PACKAGE = Path(__file__).resolve().parents[2] / "fercurate"


def _has_docstring(path: Path) -> bool:
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) is not None


def _is_stub(path: Path) -> bool:
    """A compat stub left at a moved module's old path (documented at the new home)."""
    return "moved_module(" in path.read_text(encoding="utf-8")


def _modules(folder: Path, dotted: str) -> list[str]:
    names = []
    for path in sorted(folder.glob("*.py")):
        if path.name == "__init__.py" or path.name.startswith("_") or _is_stub(path) or not _has_docstring(path):
            continue
        names.append(f"{dotted}.{path.stem}")
    for sub in sorted(p for p in folder.iterdir() if (p / "__init__.py").exists()):
        names.append(f"{dotted}.{sub.name}")
    return names


def _pages() -> dict[str, str]:
    """``api/<name>.md`` -> page text; packages get a page listing their modules."""
    pages: dict[str, str] = {}
    top_modules = _modules(PACKAGE, "fercurate")
    core = [m for m in top_modules if not (PACKAGE / m.split(".")[1]).is_dir()]
    packages = [m for m in top_modules if (PACKAGE / m.split(".")[1]).is_dir()]
    pages["api/core.md"] = "# Core modules\n\n" + "\n".join(f"::: {m}\n" for m in core)
    for pkg in packages:
        folder = PACKAGE / pkg.split(".")[1]
        body = [f"# `{pkg}`\n", f"::: {pkg}\n    options:\n      members: false\n      show_root_heading: false\n"]
        for module in _modules(folder, pkg):
            sub = PACKAGE.joinpath(*module.split(".")[1:])
            if sub.is_dir():
                body.append(f"::: {module}\n    options:\n      members: false\n")
                body.extend(f"::: {m}\n" for m in _modules(sub, module))
            else:
                body.append(f"::: {module}\n")
        pages[f"api/{pkg.split('.')[1]}.md"] = "\n".join(body)
    index = ["# API reference\n", "Generated from the docstrings at every build.\n"]
    index += [f"- [{Path(p).stem}]({Path(p).name})" for p in sorted(pages)]
    pages["api/index.md"] = "\n".join(index) + "\n"
    return pages


def on_files(files: Files, config) -> Files:  # noqa: ANN001 - MkDocs hook signature
    for uri, text in _pages().items():
        files.append(File.generated(config, uri, content=text))
    return files


def on_config(config):  # noqa: ANN001, ANN201 - MkDocs hook signature
    nav = config["nav"]
    for entry in nav:
        if isinstance(entry, dict) and "API reference" in entry:
            entry["API reference"] = ["api/index.md"] + [f"api/{Path(p).name}" for p in sorted(_pages()) if not p.endswith("index.md")]
    return config
