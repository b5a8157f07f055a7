"""The documentation site builds with MkDocs in strict mode (any warning fails), and its API reference
is generated from the package's docstrings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocstrings", reason="the docs extra (mkdocs, mkdocstrings-python) is not installed")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)],
                         cwd=ROOT, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "WARNING" not in run.stderr, run.stderr[-3000:]
    return out


def test_the_site_builds_strictly_and_has_every_guide(site: Path) -> None:
    guides = sorted(p.stem for p in (ROOT / "docs" / "guides").glob("*.md"))
    assert guides
    for guide in guides:
        assert (site / "guides" / guide / "index.html").exists(), guide


def test_the_api_reference_documents_every_package_from_its_docstrings(site: Path) -> None:
    import fercurate

    packages = sorted(p.name for p in Path(fercurate.__file__).parent.iterdir() if (p / "__init__.py").exists())
    for name in packages:
        page = site / "api" / name / "index.html"
        assert page.exists(), f"no API page for fercurate.{name}"
    ran = (site / "api" / "ran" / "index.html").read_text(encoding="utf-8")
    assert "fercurate.ran.model" in ran and "Region Attention" in ran
    core = (site / "api" / "core" / "index.html").read_text(encoding="utf-8")
    assert "fercurate.manifest" in core and "read_manifest" in core
