"""Non-faces on real images: the FERPlus warning sign fer0033120, NF votes, blank and unreadable files,
and the pose layer as the landmark evidence."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pytest
from fixtures_quality import Row, write_manifest_over
from typer.testing import CliRunner

from fercurate.cli import app
from fercurate.layers import read_layer, write_layer
from fercurate.manifest import read_manifest
from fercurate.quality.nonface import find_nonfaces
from fercurate.workspace import layer_path

SIGN = "fer0033120.png"  # FERPlus test: a warning-sign icon whose label.csv votes say neutral


@pytest.fixture
def nf_manifest(ferplus_root, workspace):
    root = workspace / "data"
    root.mkdir()
    faces = sorted((ferplus_root / "FER2013Test").glob("*.png"))[:4]
    for p in faces + [ferplus_root / "FER2013Test" / SIGN]:
        shutil.copyfile(p, root / p.name)
    shutil.copyfile(faces[0], root / "nf_voted.png")
    (root / "blank.png").write_bytes((ferplus_root / "FER2013Test" / SIGN).read_bytes())
    import cv2

    cv2.imwrite(str(root / "blank.png"), np.full((48, 48), 130, np.uint8))
    (root / "broken.png").write_bytes(b"not an image")
    rows = [Row(p.name, votes=[8, 1, 0, 0, 0, 0, 0, 0, 1, 0]) for p in faces]
    rows += [
        Row(SIGN, votes=[5, 0, 0, 0, 0, 0, 0, 0, 3, 0]),  # label.csv's votes for the sign: neutral
        Row("nf_voted.png", label_id=-1, votes=[1, 0, 0, 0, 0, 0, 0, 0, 3, 6], flags=["nf_majority"]),
        Row("blank.png", votes=[6, 0, 0, 0, 0, 0, 0, 0, 4, 0]),
        Row("broken.png", votes=[6, 0, 0, 0, 0, 0, 0, 0, 4, 0]),
    ]
    return write_manifest_over(workspace, "nf", root, rows), [p.name for p in faces]


def _by_id(result):
    return result.table.to_pandas().set_index("sample_id")


def test_warning_sign_and_other_nonfaces_are_flagged(nf_manifest):
    path, faces = nf_manifest
    result = find_nonfaces(read_manifest(path), workers=1)
    df = _by_id(result)
    sign = df.loc[f"nf/{SIGN}"]
    assert sign.flagged and sign.no_face and sign.detector_score == 0.0
    assert sign.mesh_source == "face mesh" and sign.mesh_failure
    assert any(r.startswith("no_face") for r in sign.reasons)
    for name in faces:
        row = df.loc[f"nf/{name}"]
        assert not row.flagged and not row.no_face, (name, row.reasons)
    voted = df.loc["nf/nf_voted.png"]
    assert voted.flagged and voted.nf_majority and voted.nf_votes == 6
    blank = df.loc["nf/blank.png"]
    assert blank.flagged and blank.blank and blank.gray_std < 1
    broken = df.loc["nf/broken.png"]
    assert broken.flagged and broken.unreadable and "not a decodable image" in broken.reasons[0]
    assert result.counts["no_face"] == 2 and result.counts["nf_majority"] == 1  # the sign and the blank image
    assert df.loc["nf/blank.png"].no_face
    table, meta = read_layer(layer_path(path, "nonface"), "nonface")
    assert table.num_rows == 8 and meta["provenance"]["face_check"] == "face mesh"


def test_without_face_models_only_votes_and_pixels_count(nf_manifest):
    path, _ = nf_manifest
    df = _by_id(find_nonfaces(read_manifest(path), detect=False, write=False))
    assert not df.loc[f"nf/{SIGN}"].flagged  # the sign's votes say neutral: only the face models catch it
    assert df["no_face"].isna().all()
    assert set(df.index[df.flagged]) == {"nf/nf_voted.png", "nf/blank.png", "nf/broken.png"}


def test_pose_layer_is_used_and_the_detector_confirms(nf_manifest):
    path, faces = nf_manifest
    m = read_manifest(path)
    ids = m.table.column("sample_id").to_pylist()
    failure = {f"nf/{SIGN}": "no face found", f"nf/{faces[0]}": "face mesh found no face",
               "nf/broken.png": "image unreadable"}
    pose = pa.table({
        "sample_id": ids,
        "yaw": pa.array([None if i in failure else 5.0 for i in ids], pa.float32()),
        "pitch": pa.array([None if i in failure else 1.0 for i in ids], pa.float32()),
        "roll": pa.array([None if i in failure else 0.0 for i in ids], pa.float32()),
        "method": ["mediapipe"] * len(ids),
        "confidence": pa.array([0.0 if i in failure else 0.99 for i in ids], pa.float32()),
        "failure": [failure.get(i) for i in ids],
    })
    write_layer(pose, layer_path(path, "pose"), layer="pose", manifest="nf")
    result = find_nonfaces(m, workers=1, write=False)
    df = _by_id(result)
    assert result.mesh_source == "pose layer"
    assert df.loc[f"nf/{SIGN}"].no_face and df.loc[f"nf/{SIGN}"].mesh_failure == "no face found"
    # pose failed on a real face, but the detector finds it: not a non-face
    real = df.loc[f"nf/{faces[0]}"]
    assert not real.no_face and real.detector_score > 0.3
    # the detector ran only where the pose layer reported no face
    assert df["detector_score"].notna().sum() == 2
    assert not find_nonfaces(m, use_pose=False, write=False, workers=1).mesh_source == "pose layer"


def test_cli_nonface(nf_manifest, workspace):
    res = CliRunner().invoke(app, ["quality", "nonface", "nf", "--no-detect", "-w", str(workspace)])
    assert res.exit_code == 0, res.output
    assert "3 of 8 images flagged" in res.output and "nf_majority" in res.output
    res = CliRunner().invoke(app, ["quality", "nonface", "nf", "--split", "train", "-w", str(workspace)])
    assert res.exit_code == 1 and "no rows in split" in res.output
