"""Masks only where there is a face: every face of a picture, none on a picture without one (issue 21).

Pictures come from the demo's offline faces (composed onto one canvas; a drawn landscape with no face)
and, when present, from ``../shared/data/faces`` and FERPlus.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from fercurate.demo.faces import base_faces
from fercurate.errors import InputError
from fercurate.layers import read_layer
from fercurate.manifest import build_table, read_manifest, write_manifest
from fercurate.synth.runner import SynthConfig, face_crop_manifest, run
from fercurate.workspace import Workspace

CONFIG = SynthConfig(kind="mask", styles=("surgical", "cloth", "n95", "kn95"), seed=1)


def _manifest(
    root: Path, ws: Path, paths: list[str], name: str, dataset: str = "photos", source: dict | None = None,
    boxes: list[dict | None] | None = None,
) -> Path:
    table = build_table(
        {
            "sample_id": [f"{dataset}/{p}" for p in paths],
            "dataset": [dataset] * len(paths),
            "split": ["test"] * len(paths),
            "image_path": paths,
            "label_id": [-1] * len(paths),
            "bbox": boxes or [None] * len(paths),
        }
    )
    out = ws / "manifests" / f"{name}.parquet"
    write_manifest(table, out, dataset=dataset, root=root, source=source)
    return out


def _landscape(h: int = 360, w: int = 640) -> np.ndarray:
    """A drawn landscape: sky gradient, sun, two mountain ranges, a lake. No face anywhere."""
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    sky = (1 - t) * np.array([235, 190, 120], np.float32) + t * np.array([250, 235, 215], np.float32)
    img = np.repeat(sky, w, axis=1).astype(np.uint8)
    cv2.circle(img, (w * 3 // 4, h // 4), h // 10, (120, 220, 255), -1, cv2.LINE_AA)
    far = np.array([[0, h * 2 // 3], [w // 5, h // 3], [w // 2, h * 3 // 5], [w * 4 // 5, h // 4], [w, h // 2], [w, h], [0, h]])
    near = np.array([[0, h * 4 // 5], [w // 3, h // 2], [w * 2 // 3, h * 4 // 5], [w, h * 3 // 5], [w, h], [0, h]])
    cv2.fillPoly(img, [far], (110, 120, 100), cv2.LINE_AA)
    cv2.fillPoly(img, [near], (60, 110, 70), cv2.LINE_AA)
    cv2.rectangle(img, (0, h * 9 // 10), (w, h), (170, 120, 60), -1)
    return img


@pytest.fixture(scope="module")
def demo_pictures(tmp_path_factory):
    """group.png: four of the demo's photo faces side by side on a gradient; landscape.png: no face.

    The frontal photos (astronaut, Grace Hopper) and their mirror images; the cameraman is a profile
    that neither detector finds once cropped.
    """
    photos = [f.image for f in base_faces(include_lfw=False) if f.name != "camera"]
    if len(photos) < 2:
        pytest.skip("the demo's photo faces are not available")
    faces = photos + [np.ascontiguousarray(img[:, ::-1]) for img in photos]
    root = tmp_path_factory.mktemp("pictures")
    side, gap = 200, 60
    w = len(faces) * side + (len(faces) + 1) * gap
    ramp = np.linspace(60, 200, w, dtype=np.uint8)
    canvas = np.dstack([np.tile(ramp, (side + 2 * gap, 1))] * 3)
    tiles = []
    for k, face in enumerate(faces):
        x0 = gap + k * (side + gap)
        canvas[gap : gap + side, x0 : x0 + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
        tiles.append((x0, gap, side, side))
    cv2.imwrite(str(root / "group.png"), canvas)
    cv2.imwrite(str(root / "landscape.png"), _landscape())
    # one face much larger than the others, for --faces largest
    big = canvas.copy()
    x0, y0, s, _ = tiles[0]
    big[y0 - gap // 2 : y0 + s + gap // 2, x0 - gap // 2 : x0 + s + gap // 2] = cv2.resize(
        faces[0], (s + gap, s + gap), interpolation=cv2.INTER_AREA
    )
    for x, y, s2, _ in tiles[1:]:  # shrink the others to 60%
        t = s2 * 3 // 5
        small = cv2.resize(canvas[y : y + s2, x : x + s2], (t, t), interpolation=cv2.INTER_AREA)
        big[y : y + s2, x : x + s2] = canvas[0, 0]
        big[y + s2 // 5 : y + s2 // 5 + t, x + s2 // 5 : x + s2 // 5 + t] = small
    cv2.imwrite(str(root / "group_one_big.png"), big)
    return root, tiles


def _layer(result) -> "object":  # noqa: ANN001
    return read_layer(result.layer_path, "synth")[0].to_pandas()


def test_every_face_of_a_group_picture_and_none_on_a_landscape(demo_pictures, workspace):
    root, tiles = demo_pictures
    parent = _manifest(root, workspace, ["group.png", "landscape.png"], "demo")
    result = run(parent, CONFIG, out_dir=workspace / "out", workers=1)
    df = _layer(result)
    group = df[df["derived_from"] == "photos/group.png"].sort_values("face_index")
    assert len(group) == len(tiles) and group["failure"].isna().all()
    assert list(group["face_index"]) == list(range(1, len(tiles) + 1))
    assert set(group["faces_found"]) == {len(tiles)}
    assert set(group["placement"]) == {"landmarks"} and set(group["landmark_method"]) <= {"mediapipe", "dlib"}
    assert group["lower_face_covered"].all() and group["eyes_free"].all()
    # one image holds every mask; each row's face box is on its own face (left to right)
    assert group["image_path"].nunique() == 1
    ids = sorted(group["sample_id"])
    assert ids == sorted(f"photos/{group['image_path'].iloc[0]}#face{k}" for k in range(1, len(tiles) + 1))
    for (_, row), (x, y, s, _) in zip(group.iterrows(), tiles):
        b = row["face_box"]
        cx, cy = b["x"] + b["w"] / 2, b["y"] + b["h"] / 2
        assert x < cx < x + s and y < cy < y + s, (row["sample_id"], b)
        assert 0.4 * s < b["w"] < 1.6 * s
    # pixels: every tile's lower face changed, nothing changed away from the tiles (lossless PNG; a mask
    # under a chin at the tile's edge may hang a little past it)
    var = cv2.imread(str(workspace / "out" / group["image_path"].iloc[0]))
    par = cv2.imread(str(root / "group.png"))
    changed = np.abs(var.astype(int) - par.astype(int)).max(axis=2) > 0
    outside = changed.copy()
    for x, y, s, _ in tiles:
        lower = changed[y + s // 2 : y + s, x : x + s]
        assert lower.mean() > 0.15
        assert changed[y : y + s // 5, x : x + s].mean() < 0.01  # forehead untouched
        outside[y : y + s + 25, x - 25 : x + s + 25] = False
    assert not outside.any()
    # the manifest: one row per face, with that face's box
    m = read_manifest(result.manifest_path).to_pandas().set_index("sample_id")
    assert len(m) == len(tiles)
    for sid, row in group.set_index("sample_id").iterrows():
        assert m.loc[sid, "bbox"] == pytest.approx(row["face_box"])
        assert m.loc[sid, "image_path"] == row["image_path"]
    # the landscape: a failure row with its reason, no mask, no file
    land = df[df["derived_from"] == "photos/landscape.png"]
    assert len(land) == 1 and land["failure"].iloc[0].startswith("no face found")
    assert not (workspace / "out" / land["image_path"].iloc[0]).exists()
    rejects = pq.read_table(result.rejects_path).to_pylist()
    assert [(r["image_path"], r["row"]) for r in rejects] == [("landscape.png", 2)]


def test_faces_largest_masks_only_the_largest(demo_pictures, workspace):
    root, tiles = demo_pictures
    parent = _manifest(root, workspace, ["group_one_big.png"], "big")
    config = SynthConfig(**{**CONFIG.__dict__, "faces": "largest"})
    result = run(parent, config, out_dir=workspace / "largest", workers=1)
    df = _layer(result)
    assert len(df) == 1 and df["failure"].isna().all()
    assert df["sample_id"].iloc[0] == "photos/" + df["image_path"].iloc[0]  # one face drawn: the plain id
    assert df["faces_found"].iloc[0] == len(tiles) and df["face_index"].iloc[0] == 1
    b = df["face_box"].iloc[0]
    x, y, s, _ = tiles[0]
    assert x - 40 < b["x"] + b["w"] / 2 < x + s + 40 and b["w"] > 0.6 * s
    var = cv2.imread(str(workspace / "largest" / df["image_path"].iloc[0]))
    par = cv2.imread(str(root / "group_one_big.png"))
    changed = np.abs(var.astype(int) - par.astype(int)).max(axis=2) > 0
    assert not changed[:, tiles[1][0] :].any()  # the small faces keep no mask
    everything = run(parent, CONFIG, out_dir=workspace / "all", workers=1, name="big-all")
    assert everything.rows == len(tiles)


def test_fallback_only_where_the_manifest_says_face(demo_pictures, workspace):
    """The mean face stands in only for a manifest face box or an aligned-crop dataset, marked fallback."""
    root, _ = demo_pictures
    blank = np.full((100, 100, 3), 128, np.uint8)
    cv2.imwrite(str(root / "blank_crop.png"), blank)
    # RAF-DB aligned crops: the whole picture is a face, so a face the models miss gets the fallback
    aligned = _manifest(root, workspace, ["blank_crop.png"], "raf", dataset="rafdb", source={"images": "aligned"})
    assert face_crop_manifest(read_manifest(aligned)) == "RAF-DB aligned faces"
    # (mesh only: dlib's predictor, handed a box, always returns a face-shaped set of points)
    mesh_only = SynthConfig(**{**CONFIG.__dict__, "methods": ("mediapipe",)})
    res = run(aligned, mesh_only, out_dir=workspace / "raf", workers=1)
    row = _layer(res).iloc[0]
    assert row["placement"] == "fallback" and row["landmark_method"] == "prior" and row["face_source"] == "crop"
    flags = read_manifest(res.manifest_path).to_pandas()["flags"].iloc[0]
    assert "synth_prior_landmarks" in list(flags)
    # the same picture in a manifest that does not say it is a face: no face found, no mask
    plain = _manifest(root, workspace, ["blank_crop.png", "group.png"], "plain")
    assert face_crop_manifest(read_manifest(plain)) is None
    res = run(plain, mesh_only, out_dir=workspace / "plain", workers=1)
    df = _layer(res)
    assert df[df["derived_from"] == "photos/blank_crop.png"]["failure"].iloc[0].startswith("no face found")
    assert "fallback" not in set(df["placement"].dropna())
    # a manifest face box is the manifest's word: fallback, marked
    boxed = _manifest(root, workspace, ["blank_crop.png"], "boxed", boxes=[{"x": 10.0, "y": 10.0, "w": 80.0, "h": 80.0}])
    res = run(boxed, mesh_only, out_dir=workspace / "boxed", workers=1)
    row = _layer(res).iloc[0]
    assert row["placement"] == "fallback" and row["face_source"] == "manifest"
    assert row["face_box"] == pytest.approx({"x": 10.0, "y": 10.0, "w": 80.0, "h": 80.0})


def test_shared_photos_every_face_no_frame_wide_masks(faces_dir, workspace):
    """../shared/data/faces: the group photos get all their faces, the landscape none, no mask is frame-wide."""
    names = ["pyfeat_multi_face.jpg", "insightface_t1.jpg", "pyfeat_free-mountain-vector-01.jpg", "prnet_0.jpg"]
    if not all((faces_dir / n).exists() for n in names):
        pytest.skip("group photos not available")
    parent = _manifest(faces_dir, workspace, names, "shared")
    result = run(parent, CONFIG, out_dir=workspace / "shared-out", workers=1)
    df = _layer(result)
    found = df[df["failure"].isna()].groupby("derived_from").size().to_dict()
    # faces present (counted by eye, sources.csv agrees): 5, 6, 0 and 1
    assert found == {"photos/pyfeat_multi_face.jpg": 5, "photos/insightface_t1.jpg": 6, "photos/prnet_0.jpg": 1}
    land = df[df["derived_from"].str.contains("mountain")]
    assert len(land) == 1 and land["failure"].iloc[0].startswith("no face found")
    ok = df[df["failure"].isna()]
    assert set(ok["placement"]) == {"landmarks"}
    assert ok["lower_face_covered"].all() and ok["eyes_free"].all()
    for _, row in ok.iterrows():  # no frame-wide mask: each face box is a small part of the picture
        b = row["face_box"]
        assert b["w"] * b["h"] < 0.5 * row["width"] * row["height"], row["sample_id"]


def test_profile_face_like_fer0033292_is_never_a_silent_mask(ferplus_root, workspace):
    """fer0033292 (looking up, in profile): no landmark model places it. In a FERPlus crop the mean face
    may stand in, but only marked ``placement=fallback``; with --no-fallback, or in a manifest that does
    not say the picture is a face, it is a failure row."""
    rel = "FER2013Test/fer0033292.png"
    box = [{"x": 0.0, "y": 0.0, "w": 48.0, "h": 48.0}]
    parent = _manifest(ferplus_root, workspace, [rel], "fer", dataset="ferplus", boxes=box)
    res = run(parent, CONFIG, out_dir=workspace / "fer", workers=1)
    row = _layer(res).iloc[0]
    assert row["placement"] == "fallback" and row["landmark_method"] == "prior"
    assert "mediapipe" in row["landmark_notes"] and "dlib" in row["landmark_notes"]
    with pytest.raises(InputError, match="no variant could be made; first failure: no landmarks: mediapipe:"):
        run(parent, SynthConfig(**{**CONFIG.__dict__, "fallback": False}), out_dir=workspace / "fer2", workers=1,
            name="fer-strict")
    rejects = pq.read_table(workspace / "manifests" / "fer-strict.rejects.parquet").to_pylist()
    assert len(rejects) == 1 and rejects[0]["reason"].startswith("no landmarks: mediapipe:")


def test_resume_keeps_every_face_row_of_a_picture(demo_pictures, workspace):
    root, tiles = demo_pictures
    parent = _manifest(root, workspace, ["group.png"], "again")
    first = run(parent, CONFIG, out_dir=workspace / "again", workers=1)
    image = workspace / "again" / _layer(first)["image_path"].iloc[0]
    before = image.read_bytes()
    again = run(parent, CONFIG, out_dir=workspace / "again", workers=1, resume=True)
    assert again.reused == first.rows == len(tiles)
    assert image.read_bytes() == before
    assert read_manifest(again.manifest_path).table.equals(read_manifest(first.manifest_path).table)


def test_unknown_faces_choice_is_a_clear_error(demo_pictures, workspace):
    root, _ = demo_pictures
    parent = _manifest(root, workspace, ["group.png"], "bad")
    with pytest.raises(InputError, match=r"--faces 'every': use all or largest"):
        run(parent, SynthConfig(kind="mask", styles=("n95",), faces="every"), workers=1)


def test_cli_faces_option(demo_pictures, workspace):
    from typer.testing import CliRunner

    from fercurate.cli import app

    root, tiles = demo_pictures
    parent = _manifest(root, workspace, ["group.png", "landscape.png"], "cli")
    res = CliRunner().invoke(app, ["synth", "mask", str(parent), "--faces", "largest", "--style", "n95",
                                   "--out", str(workspace / "cli"), "-j", "1"])
    assert res.exit_code == 0, res.output
    assert "1 images" in res.output and "failed: 1 (no face found 1)" in res.output
    layer = read_layer(workspace / "manifests" / "cli-masked.synth.parquet", "synth")[0].to_pandas()
    ok = layer[layer["failure"].isna()]
    assert len(ok) == 1 and ok["faces_found"].iloc[0] == len(tiles)
    assert read_manifest(workspace / "manifests" / "cli-masked.parquet").meta.source["synth"]["faces"] == "largest"
