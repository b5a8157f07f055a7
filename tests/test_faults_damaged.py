"""Damaged side files are one error line naming them, and the report names what it cannot read
(issue 29, cases 6 and 7).

Every file here is real Parquet/JSON written by fercurate and then damaged the way a killed copy,
a full disk or another tool leaves it: cut short, metadata cut, a column missing, a timestamp
column rewritten as text, an empty annotator, garbage JSON.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_annotate import make_toy_manifest
from typer.testing import CliRunner

from fercurate.annotations import append_events, make_event
from fercurate.cli import app
from fercurate.layers import LAYER_META_KEY, write_layer
from fercurate.manifest import read_manifest, rejects_path, write_rejects
from fercurate.pose.runner import POSE_SCHEMA as POSE_LAYER_SCHEMA
from fercurate.subsets import write_subset
from fercurate.workspace import Workspace, layer_path

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def _cut(path: Path, keep: float = 0.5) -> None:
    """Cut a file short (a killed copy, a full disk)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _one_error(res, message: str) -> None:  # noqa: ANN001 - click Result
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert lines[-1] == f"error: {message}", lines[-1]


@pytest.fixture
def toy(workspace: Path) -> Path:
    """The toy manifest with a pose layer, two annotators' labels and a pose subset."""
    manifest = make_toy_manifest(workspace, name="toy")
    m = read_manifest(manifest)
    ids = m.table.column("sample_id").to_pylist()
    n = len(ids)
    pose = pa.Table.from_pydict({"sample_id": ids, "yaw": [40.0] * n, "pitch": [0.0] * n, "roll": [0.0] * n,
                                 "method": ["mediapipe"] * n, "confidence": [0.9] * n, "failure": [None] * n},
                                schema=POSE_LAYER_SCHEMA)
    write_layer(pose, layer_path(manifest, "pose"), layer="pose", manifest="toy")
    append_events(Workspace(workspace).annotation_path("toy"), [
        make_event(ids[1], ["mask"], annotator="alice", source="human", labelled_at=T0),
        make_event(ids[1], ["glasses"], annotator="bob", source="human", labelled_at=T0)])
    write_subset(m, "pose30-estimated", ids[:3], rule="max(|yaw|,|pitch|) > 30", workspace=Workspace(workspace))
    write_rejects([], rejects_path(manifest))
    return manifest


# --- case 6: one error line naming the file ---------------------------------------------------------


def test_a_truncated_rejects_table(toy: Path) -> None:
    """Before: 'fercurate info' ended in 'ArrowInvalid ... magic bytes' (a traceback)."""
    rp = rejects_path(toy)
    _cut(rp)
    res = CliRunner().invoke(app, ["info", "toy"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.output.strip().startswith(f"error: {rp}: not a readable rejects table (")
    assert res.output.strip().endswith("); ingest again to rewrite it")


def test_a_pose_layer_with_cut_metadata_or_no_yaw(toy: Path) -> None:
    """Before: 'subsets build' ended in JSONDecodeError / KeyError tracebacks."""
    lp = layer_path(toy, "pose")
    table = pq.read_table(lp)
    raw = table.schema.metadata[LAYER_META_KEY]
    pq.write_table(table.replace_schema_metadata({LAYER_META_KEY: raw[: len(raw) // 2]}), lp)
    res = CliRunner().invoke(app, ["subsets", "build", "toy", "--pose", "30"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.output.strip().startswith(f"error: {lp}: damaged layer metadata (fercurate.layer is not JSON: ")
    assert res.output.strip().endswith("(damaged or not written by fercurate; make it again with 'fercurate pose')")
    pq.write_table(table.drop(["yaw"]), lp)
    res = CliRunner().invoke(app, ["subsets", "build", "toy", "--pose", "30"])
    _one_error(res, f"{lp}: the pose lacks column 'yaw' (damaged or not written by fercurate; make it again with "
                    "'fercurate pose')")


def _damage_events(path: Path, how: str) -> None:
    table = pq.read_table(path)
    if how == "text":  # rewritten by a tool that wrote the time as text
        col = pa.array([v.isoformat() for v in table.column("labelled_at").to_pylist()], pa.string())
        table = table.set_column(table.schema.get_field_index("labelled_at"), "labelled_at", col)
    else:  # an event without an annotator
        names = table.column("annotator").to_pylist()
        names[1] = None
        table = table.set_column(table.schema.get_field_index("annotator"), pa.field("annotator", pa.string()),
                                 pa.array(names, pa.string()))
    pq.write_table(table, path)


@pytest.mark.parametrize("how", ["text", "null"])
def test_annotation_events_of_the_wrong_type_or_without_annotator(toy: Path, workspace: Path, how: str) -> None:
    """Before: 'annotate status', 'adjudicate', 'subsets build --occlusion' and 'report' gave tracebacks."""
    path = Workspace(workspace).annotation_path("toy")
    _damage_events(path, how)
    message = (f"{path}: column 'labelled_at' is string, not timestamp[us, tz=UTC] (damaged, or rewritten by another "
               "tool)" if how == "text" else
               f"{path}: column 'annotator' is empty in 1 rows (first: row 2 of 2); every event needs one")
    runner = CliRunner()
    for args in (["annotate", "status", "toy", "--no-app"], ["annotate", "adjudicate", "toy"],
                 ["subsets", "build", "toy", "--occlusion"]):
        _one_error(runner.invoke(app, args), message)
    res = runner.invoke(app, ["report", "--out", str(workspace / "report")])
    assert res.exit_code == 0, res.output
    assert f"Occlusion labelling: no readable labels; 1 file could not be read\n  cannot read: {message}" in res.output


# --- case 7: the report and eval name what they cannot read ------------------------------------------


def test_the_report_names_every_file_it_could_not_read(toy: Path, workspace: Path) -> None:
    """Before: an unreadable manifest was 'no manifests', a truncated subset vanished from the count and a
    garbage metrics.json was 'no evaluations'."""
    ws = Workspace(workspace)
    broken = workspace / "manifests" / "broken.parquet"
    broken.write_bytes(toy.read_bytes())
    _cut(broken)
    subset = ws.subsets / "toy-pose30-estimated.parquet"
    _cut(subset)
    metrics = workspace / "runs" / "ev" / "metrics.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text('{"groups": [{"group": "test", "n": 3, "acc')
    lp = layer_path(toy, "pose")
    pq.write_table(pq.read_table(lp).drop(["pitch"]), lp)
    res = CliRunner().invoke(app, ["report", "--out", str(workspace / "report")])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "Datasets: 1 manifests, 8 rows; 1 file could not be read\n  cannot read: " f"{broken}: not a readable" in out
    assert f"Head pose: no readable pose layers; 1 file could not be read\n  cannot read: {lp}: the pose lacks" in out
    assert (f"Subsets vs Table I: no readable subsets; 1 file could not be read\n  cannot read: {subset}: not a "
            "readable Parquet file") in out
    assert (f"Evaluation vs published results: no evaluations; 1 file could not be read\n  cannot read: {metrics}: "
            "not JSON") in out
    page = (workspace / "report" / "index.html").read_text()
    for path in (broken, subset, metrics, lp):
        assert str(path) in page
    assert page.count("Could not read 1 file:") == 4


def test_subsets_list_names_a_damaged_subset_file(toy: Path, workspace: Path) -> None:
    subset = Workspace(workspace).subsets / "toy-pose30-estimated.parquet"
    _cut(subset)
    res = CliRunner().invoke(app, ["subsets", "list"])
    assert res.exit_code == 0
    assert res.stdout.strip() == "no readable subsets"
    assert res.stderr.startswith(f"cannot read: {subset}: not a readable Parquet file")


def test_eval_on_a_truncated_subset_says_it_is_damaged(workspace: Path) -> None:
    """Before: 'fercurate eval --subset' on a truncated subset file said 'no subset named ...'."""
    import torch
    from fixtures_ran import make_toy_manifest as make_faces

    from fercurate.ran.train import TrainConfig, train

    torch.set_num_threads(1)
    make_faces(workspace, size=24, per_class={"train": 2, "val": 1, "test": 1})
    toy = workspace / "manifests" / "toy.parquet"
    run = train(TrainConfig(manifest=str(toy), out=str(workspace / "runs" / "t"), epochs=1, batch_size=8, input_size=24,
                            face_size=24, decode_workers=1, arch="baseline", save_every_min=0), echo=lambda s: None)
    m = read_manifest(toy)
    test_ids = [s for s, sp in zip(m.table.column("sample_id").to_pylist(), m.table.column("split").to_pylist())
                if sp == "test"]
    info = write_subset(m, "hard", test_ids, rule="hand-picked", workspace=Workspace(workspace))
    _cut(info.path)
    res = CliRunner().invoke(app, ["eval", "--model", str(run.checkpoint), "--manifest", "toy", "--subset", "hard",
                                   "-j", "1"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.output.strip().splitlines()[-1].startswith(
        f"error: subset 'hard' for manifest 'toy' cannot be read: {info.path}: not a readable Parquet file (")
