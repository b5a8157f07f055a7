"""IngestOptions: the options every dataset's ingest shares, one value from the CLI to ``finish``."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_layouts import make_rafdb
from typer.testing import CliRunner

from fercurate.cli import app
from fercurate.ingest import IngestOptions, ingest, rafdb
from fercurate.workspace import Workspace

SHARED_FLAGS = ("--out", "--verify", "--workers", "--strict", "--workspace", "--follow-links", "--max-pixels")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_rafdb(tmp_path / "basic", n_train=4, n_test=2, seed=3)["root"]


def test_keywords_and_an_options_value_write_the_same_manifest(root: Path, tmp_path: Path) -> None:
    ingest("rafdb", root, tmp_path / "a" / "rafdb.parquet", verify=True, workers=1)
    ingest("rafdb", root, tmp_path / "b" / "rafdb.parquet", options=IngestOptions(verify=True, workers=1))
    a, b = (tmp_path / d / "rafdb.parquet" for d in ("a", "b"))
    assert a.read_bytes() == b.read_bytes()


def test_keywords_replace_fields_of_an_options_value() -> None:
    base = IngestOptions(verify=True, workers=2)
    assert IngestOptions.of(base, strict=True) == IngestOptions(verify=True, workers=2, strict=True)
    assert IngestOptions.of(base) is base and IngestOptions.of() == IngestOptions()


def test_an_unknown_keyword_names_the_shared_options(root: Path, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="'verfy'.*the options every dataset shares: name, verify, workers"):
        rafdb.ingest(root, tmp_path / "x.parquet", verfy=True)


def test_the_default_manifest_goes_to_the_options_workspace(root: Path, tmp_path: Path) -> None:
    result = rafdb.ingest(root, options=IngestOptions(workspace=Workspace(tmp_path / "ws"), name="raf"))
    assert result.manifest_path == tmp_path / "ws" / "manifests" / "raf.parquet" and result.manifest_path.exists()


@pytest.mark.parametrize("dataset", ["affectnet", "ferplus", "rafdb", "sfew"])
def test_every_ingest_command_has_the_shared_options(dataset: str) -> None:
    res = CliRunner().invoke(app, ["ingest", dataset, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert all(flag in res.output for flag in SHARED_FLAGS), res.output
