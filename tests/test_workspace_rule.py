"""Issue 28 item 12: a manifest given by path brings its workspace; outputs follow the data, not the current folder."""

from __future__ import annotations

import pyarrow as pa
import pytest
from fixtures_ran import make_toy_manifest
from typer.testing import CliRunner

from fercurate.cli import app
from fercurate.layers import write_layer
from fercurate.manifest import read_manifest, write_manifest
from fercurate.workspace import Workspace, layer_path


@pytest.fixture
def loose(tmp_path, monkeypatch):
    """A manifest saved as data/toy.parquet (no manifests/ folder), and commands run from another folder."""
    monkeypatch.delenv("FERCURATE_WORKSPACE", raising=False)
    made = make_toy_manifest(tmp_path / "build", size=32, per_class={"test": 2})
    m = read_manifest(made)
    data = tmp_path / "data"
    data.mkdir()
    path = write_manifest(m.table, data / "toy.parquet", dataset=m.dataset, root=m.root)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return path, data, elsewhere


def test_the_workspace_of_a_manifest_given_by_path(tmp_path, monkeypatch):
    monkeypatch.delenv("FERCURATE_WORKSPACE", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ws" / "manifests").mkdir(parents=True)
    assert Workspace.choose(manifest=tmp_path / "ws" / "manifests" / "a.parquet").root == (tmp_path / "ws").resolve()
    assert Workspace.choose(manifest="ws/manifests/a.parquet").root == (tmp_path / "ws").resolve()
    assert Workspace.choose(manifest=tmp_path / "ws" / "a.parquet").root == (tmp_path / "ws").resolve()
    assert Workspace.choose(manifest="ferplus").root == tmp_path.resolve()  # a name: the current folder
    assert Workspace.choose(tmp_path / "w", manifest=tmp_path / "ws" / "a.parquet").root == (tmp_path / "w").resolve()
    monkeypatch.setenv("FERCURATE_WORKSPACE", str(tmp_path / "env"))
    assert Workspace.choose(manifest=tmp_path / "ws" / "a.parquet").root == (tmp_path / "env").resolve()


def test_subsets_build_on_a_manifest_by_path_writes_beside_the_data(loose):
    path, data, elsewhere = loose
    ids = read_manifest(path).table.column("sample_id").to_pylist()
    pose = pa.table({"sample_id": ids, "yaw": [40.0, 10.0] * (len(ids) // 2), "pitch": [0.0] * len(ids),
                     "roll": [0.0] * len(ids), "failure": pa.nulls(len(ids), pa.string())})
    write_layer(pose, layer_path(path, "pose"), layer="pose", manifest="toy", provenance={"method": "test"})
    r = CliRunner().invoke(app, ["subsets", "build", str(path), "--pose", "30"])
    assert r.exit_code == 0, r.output
    assert (data / "manifests" / "subsets" / "toy-pose30-estimated.parquet").exists()
    assert not (elsewhere / "manifests").exists()
    listed = CliRunner().invoke(app, ["subsets", "list", "-w", str(data)])
    assert "pose30-estimated" in listed.output


def test_synth_mask_on_a_manifest_by_path_writes_its_manifest_and_events_beside_the_data(loose):
    path, data, elsewhere = loose
    r = CliRunner().invoke(app, ["synth", "mask", str(path), "--out", str(data / "masked"), "--limit", "2",
                                 "--style", "surgical", "-j", "1"])
    assert r.exit_code == 0, r.output
    assert (data / "manifests" / "toy-masked.parquet").exists()
    assert (data / "annotations" / "toy-masked.occlusion.parquet").exists()
    assert not (elsewhere / "manifests").exists() and not (elsewhere / "annotations").exists()
