"""The pose batch runner, `fercurate pose` and Pose-30/45 subsets on a small real-image manifest."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from fercurate.cli import app
from fercurate.layers import read_layer
from fercurate.manifest import build_table, write_manifest
from fercurate.pose import runner
from fercurate.pose.runner import parts_dir, run_pose
from fercurate.subsets import build, subset_ids
from fercurate.workspace import Workspace, layer_path

N_FACES = 14


@pytest.fixture
def manifest(workspace: Path, ferplus_root: Path, tmp_path: Path) -> Path:
    """14 real FERPlus faces + a gray non-face, a corrupt file and a missing file; bbox = whole image."""
    root = tmp_path / "data"
    (root / "img").mkdir(parents=True)
    names = []
    for src in sorted((ferplus_root / "FER2013Test").glob("*.png"))[:N_FACES]:
        shutil.copy(src, root / "img" / src.name)
        names.append(src.name)
    cv2.imwrite(str(root / "img" / "blank.png"), np.full((48, 48), 128, np.uint8))
    (root / "img" / "corrupt.png").write_bytes(b"\x89PNG not really")
    names += ["blank.png", "corrupt.png", "missing.png"]
    n = len(names)
    table = build_table({
        "sample_id": [f"toy/{x}" for x in names],
        "dataset": ["ferplus"] * n,
        "split": ["test"] * n,
        "image_path": [f"img/{x}" for x in names],
        "label_id": [-1] * n,
        "bbox": [{"x": 0.0, "y": 0.0, "w": 48.0, "h": 48.0}] * n,
    })
    path = workspace / "manifests" / "toy.parquet"
    write_manifest(table, path, dataset="ferplus", root=root)
    return path


def _table(path: Path):  # noqa: ANN202 - pyarrow table
    table, _ = read_layer(path, "pose")
    return table


@pytest.mark.realdata
def test_run_writes_every_row_with_failures_as_reasons(manifest: Path) -> None:
    summary = run_pose(manifest, workers=1, chunk_size=4)
    table = _table(summary.path)
    assert summary.path == layer_path(manifest, "pose")
    assert table.num_rows == N_FACES + 3
    assert [f.type for f in table.schema] == [f.type for f in runner.POSE_SCHEMA]
    rows = {r["sample_id"]: r for r in table.to_pylist()}
    assert rows["toy/missing.png"]["failure"] == "image missing"
    assert rows["toy/corrupt.png"]["failure"] == "image unreadable"
    assert rows["toy/blank.png"]["failure"] == "face mesh found no face"
    faces = [rows[f"toy/{p.name}"] for p in sorted((manifest.parents[2] / "data" / "img").glob("fer*.png"))]
    assert sum(r["failure"] is None for r in faces) >= N_FACES - 2
    for r in faces:
        if r["failure"] is None:
            assert -90 < r["yaw"] < 90 and 0 < r["confidence"] <= 1 and r["method"] == "mediapipe"
    assert summary.failures["image missing"] == 1 and summary.total == N_FACES + 3
    assert any("image missing" in line for line in summary.lines())
    assert not parts_dir(manifest).exists()


@pytest.mark.realdata
def test_rerun_is_identical_and_resume_continues_an_interrupted_run(manifest: Path, monkeypatch) -> None:
    first = run_pose(manifest, workers=1, chunk_size=4)
    reference = first.path.read_bytes()
    again = run_pose(manifest, workers=1, chunk_size=4)
    assert again.path.read_bytes() == reference  # a re-run without --resume recomputes the same file

    real_chunk = runner.pose_chunk
    calls = []

    def dies_on_third_chunk(rows):  # noqa: ANN001, ANN202
        calls.append(rows[0][0])
        if len(calls) == 3:
            raise KeyboardInterrupt  # what a Ctrl-C (or a kill between chunks) leaves behind
        return real_chunk(rows)

    first.path.unlink()
    monkeypatch.setattr(runner, "pose_chunk", dies_on_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        run_pose(manifest, workers=1, chunk_size=4)
    parts = sorted(p.name for p in parts_dir(manifest).glob("part-*.parquet"))
    assert parts == ["part-000000.parquet", "part-000001.parquet"]
    assert not first.path.exists()

    monkeypatch.setattr(runner, "pose_chunk", real_chunk)
    resumed = run_pose(manifest, workers=1, chunk_size=4, resume=True)
    assert resumed.resumed == 8 and resumed.computed == N_FACES + 3 - 8
    assert resumed.path.read_bytes() == reference


@pytest.mark.realdata
def test_resume_with_other_settings_recomputes_everything(manifest: Path) -> None:
    parts = parts_dir(manifest)
    parts.mkdir(parents=True)
    (parts / "parts.json").write_text('{"method": "dlib"}')
    pq.write_table(runner.POSE_SCHEMA.empty_table(), parts / "part-000000.parquet")
    summary = run_pose(manifest, workers=1, chunk_size=4, resume=True)
    assert summary.resumed == 0 and summary.computed == N_FACES + 3


@pytest.mark.realdata
def test_two_workers_give_the_same_layer(manifest: Path, tmp_path: Path) -> None:
    one = run_pose(manifest, workers=1, chunk_size=5, out=tmp_path / "one.pose.parquet")
    two = run_pose(manifest, workers=2, chunk_size=5, out=tmp_path / "two.pose.parquet")
    assert _table(one.path).to_pandas().equals(_table(two.path).to_pandas())  # NaN rows compare equal here


@pytest.mark.realdata
def test_cli_pose_then_pose_subsets(manifest: Path, workspace: Path) -> None:
    cli = CliRunner()
    result = cli.invoke(app, ["pose", str(manifest), "--workers", "1", "--chunk-size", "8"])
    assert result.exit_code == 0, result.output
    assert "of 17 faces ok" in result.output and "image missing" in result.output
    assert layer_path(manifest, "pose").exists()

    ws = Workspace.current(workspace)
    infos = build(manifest, pose=(30, 45), workspace=ws)
    assert [i.name for i in infos] == ["pose30-estimated", "pose45-estimated"]
    pose30, pose45 = (subset_ids(i) for i in infos)
    assert pose45 <= pose30
    table = _table(layer_path(manifest, "pose"))
    angles = {r["sample_id"]: max(abs(r["yaw"]), abs(r["pitch"])) for r in table.to_pylist() if r["failure"] is None}
    assert pose30 == {s for s, a in angles.items() if a > 30}

    cal = build(manifest, pose=(30, 45), calibration="openface", workspace=ws)
    assert [i.name for i in cal] == ["pose30-openface", "pose45-openface"]
    assert subset_ids(cal[1]) <= subset_ids(cal[0]) <= set(angles)

    listed = cli.invoke(app, ["subsets", "list"])
    assert "pose30-openface" in listed.output and "pose45" in listed.output


def test_cli_rejects_unknown_method_and_missing_manifest(workspace: Path) -> None:
    cli = CliRunner()
    result = cli.invoke(app, ["pose", "nosuch"])
    assert result.exit_code == 1 and "no manifest named 'nosuch'" in result.output
    write_manifest(
        build_table({"sample_id": ["a/x.png"], "dataset": ["ferplus"], "split": ["test"], "image_path": ["x.png"],
                     "label_id": [-1]}),
        workspace / "manifests" / "one.parquet", dataset="ferplus", root=workspace,
    )
    result = cli.invoke(app, ["pose", "one", "--method", "openface"])
    assert result.exit_code == 1 and "unknown pose method 'openface'" in result.output
    result = cli.invoke(app, ["pose", "one", "--workers", "1"])
    assert result.exit_code == 0 and "0 of 1 faces ok" in result.output and "image missing" in result.output


@pytest.mark.realdata
def test_an_estimator_crash_on_one_image_fails_only_that_row(manifest: Path, monkeypatch) -> None:
    from fercurate.pose.estimators import MeshPose

    bad = manifest.parents[2] / "data" / "img" / "blank.png"
    cv2.imwrite(str(bad), np.full((7, 7), 90, np.uint8))  # the row our broken estimator chokes on
    real = MeshPose.estimate

    def fragile(self, images, bboxes=None):  # noqa: ANN001, ANN202
        if any(img is not None and img.shape[0] == 7 for img in images):
            raise ValueError("cannot handle 7-pixel images")
        return real(self, images, bboxes)

    monkeypatch.setattr(MeshPose, "estimate", fragile)
    summary = run_pose(manifest, workers=1, chunk_size=8)
    rows = {r["sample_id"]: r for r in _table(summary.path).to_pylist()}
    assert rows["toy/blank.png"]["failure"] == "pose error: ValueError"
    assert sum(r["failure"] is None for r in rows.values()) >= N_FACES - 2  # its chunk-mates still got a pose


def test_cli_max_pixels_applies_to_pose(manifest: Path, workspace: Path, monkeypatch) -> None:
    monkeypatch.setenv("FERCURATE_MAX_PIXELS", "50000000")  # restored after the test: the option sets it
    r = CliRunner().invoke(app, ["--max-pixels", "1000", "pose", str(manifest), "-j", "1"])
    assert r.exit_code == 0, r.output
    table, _ = read_layer(layer_path(manifest, "pose"), "pose")
    failures = table.column("failure").to_pylist()
    # every 48x48 face (2,304 pixels) is over the limit: refused from its header, with the reason
    assert sum(f is not None and "image too large" in f for f in failures) == N_FACES + 1  # + the blank image
