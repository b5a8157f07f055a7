"""Subsets: pose thresholds from the pose layer, occlusion from annotations, listing and lookup, CLI."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from fercurate import subsets
from fercurate.annotations import append_events, make_event
from fercurate.cli import app
from fercurate.errors import InputError
from fercurate.layers import write_layer
from fercurate.manifest import build_table, read_manifest, write_manifest
from fercurate.workspace import Workspace, layer_path

IDS = [f"toy/{i}.png" for i in range(6)]


@pytest.fixture
def toy(workspace: Path) -> Path:
    ws = Workspace.current()
    t = build_table({"sample_id": IDS, "dataset": ["ferplus"] * 6, "split": ["test"] * 6,
                     "image_path": [i.split("/")[1] for i in IDS], "label_id": [0] * 6, "label": ["neutral"] * 6})
    path = write_manifest(t, ws.manifest_path("toy"), dataset="ferplus", root=workspace)
    pose = pa.table({
        "sample_id": IDS,
        "yaw": pa.array([0, 35, -50, 10, None, 29.9], pa.float32()),
        "pitch": pa.array([0, 0, 0, -46, None, 0], pa.float32()),
        "roll": pa.array([80, 0, 0, 0, None, 0], pa.float32()),
        "method": ["test"] * 6,
        "confidence": pa.array([1] * 6, pa.float32()),
        "failure": [None, None, None, None, "no face found", None],
    })
    write_layer(pose, layer_path(path, "pose"), layer="pose", manifest="toy", provenance={"method": "test"})
    return path


def test_pose_subsets_follow_the_paper_rule(toy: Path) -> None:
    built = subsets.build(toy, pose=[30, 45])
    by_name = {b.name: b for b in built}
    assert subsets.subset_ids(by_name["pose30-estimated"]) == {"toy/1.png", "toy/2.png", "toy/3.png"}  # roll ignored
    assert subsets.subset_ids(by_name["pose45-estimated"]) == {"toy/2.png", "toy/3.png"}
    table, prov = subsets.read_subset(by_name["pose45-estimated"].path)
    assert prov["manifest"] == "toy" and prov["threshold"] == 45
    assert sorted(table.column("value").to_pylist()) == [46.0, 50.0]


def test_occlusion_subsets_from_current_labels(toy: Path) -> None:
    ws = Workspace.current()
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    append_events(ws.annotation_path("toy"), [
        make_event("toy/0.png", ["mask"], annotator="a", source="human", labelled_at=t0),
        make_event("toy/1.png", ["none"], annotator="a", source="human", labelled_at=t0),
        make_event("toy/2.png", ["glasses|mask"], annotator="ran-authors", source="official", labelled_at=t0),
    ])
    built = {b.name: b for b in subsets.build(toy, occlusion=True)}
    assert subsets.subset_ids(built["occlusion-labelled"]) == {"toy/0.png", "toy/2.png"}
    assert subsets.subset_ids(built["occlusion-labelled-mask"]) == {"toy/0.png"}
    assert subsets.subset_ids(built["occlusion-labelled-glasses-or-mask"]) == {"toy/2.png"}


def test_find_and_list(toy: Path) -> None:
    subsets.build(toy, pose=[45])
    info = subsets.find_subset("pose45-estimated")
    assert info.manifest == "toy" and info.manifest_path == toy.resolve() and info.size == 2
    with pytest.raises(InputError, match="no subset named 'pose99'.*known: pose45-estimated"):
        subsets.find_subset("pose99")
    # 'pose45' is the paper's list: without an official list it is not the estimate, and says so
    with pytest.raises(InputError, match="no official list 'pose45'.*import-ran-lists.*'pose45-estimated'"):
        subsets.find_subset("pose45")
    assert [s.name for s in subsets.list_subsets()] == ["pose45-estimated"]


def test_paper_names_resolve_to_the_official_lists(toy: Path) -> None:
    m = read_manifest(toy)
    subsets.build(toy, pose=[30])
    official = subsets.write_subset(m, "official-pose30", ["toy/1.png", "toy/4.png"], rule="official RAN list: pose30")
    info = subsets.find_subset("pose30")
    assert info.path == official.path and subsets.paper_condition(info) == "pose30"
    assert subsets.paper_condition(subsets.find_subset("pose30-estimated")) is None
    line = subsets.compare_with_official(subsets.find_subset("pose30-estimated"))
    assert line == ("pose30-estimated: official list pose30 has 2, ours 3, overlap 1 (official-pose30)")
    res = CliRunner().invoke(app, ["subsets", "build", "toy", "--pose", "30"])
    assert res.exit_code == 0 and "official list pose30 has 2, ours 3, overlap 1" in res.output
    # a subset literally named like a paper list is used only where no official list exists
    subsets.write_subset(m, "pose45", ["toy/2.png"], rule="a user's own")
    assert subsets.find_subset("pose45").name == "pose45"


def test_missing_layers_give_clear_errors(workspace: Path) -> None:
    ws = Workspace.current()
    t = build_table({"sample_id": ["x/a"], "dataset": ["rafdb"], "split": ["test"], "image_path": ["a"], "label_id": [-1]})
    path = write_manifest(t, ws.manifest_path("x"), dataset="rafdb", root=workspace)
    with pytest.raises(InputError, match="no pose layer; run 'fercurate pose"):
        subsets.build(path, pose=[30])
    with pytest.raises(InputError, match="no occlusion labels yet"):
        subsets.build(path, occlusion=True)
    with pytest.raises(InputError, match="nothing to build"):
        subsets.build(path)


def test_ids_outside_manifest_refused(toy: Path) -> None:
    with pytest.raises(InputError, match="not in"):
        subsets.write_subset(read_manifest(toy), "bad", ["other/1.png"], rule="test")


def test_cli_build_and_list(toy: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["subsets", "build", "toy", "--pose", "30"])
    assert res.exit_code == 0, res.output
    assert "pose30-estimated" in res.output and "3" in res.output
    res = runner.invoke(app, ["subsets", "list"])
    assert res.exit_code == 0 and "pose30-estimated" in res.output and "max(|yaw|,|pitch|) > 30" in res.output
    res = runner.invoke(app, ["subsets", "build", "nosuch", "--pose", "30"])
    assert res.exit_code == 1 and "no manifest named 'nosuch'" in res.output
