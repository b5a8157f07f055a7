"""End to end: synthetic variants of a small real manifest (provenance, events, determinism, resume)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from fercurate.annotations import latest_labels, read_events
from fercurate.cli import app
from fercurate.errors import InputError
from fercurate.layers import read_layer
from fercurate.manifest import build_table, read_manifest, rejects_path, write_manifest
from fercurate.subsets import build as build_subsets
from fercurate.synth.runner import SynthConfig, run
from fercurate.workspace import Workspace

FER = [f"ferplus/FER2013Test/fer00{n}.png" for n in (32220, 32222, 32223, 32226, 32227, 32228)]
OTHER = ["jaffe/KA.AN1.39.tiff", "faces/prnet_4.jpg", "faces/pyfeat_free-mountain-vector-01.jpg"]
LABELS = ["happy", "sad", "anger", "neutral", "fear", "surprise", "disgust", "happy", "neutral"]


def _parent(shared_data: Path, ws: Path, paths: list[str], name: str = "mini") -> Path:
    missing = [p for p in paths if not (shared_data / p).exists() and "missing" not in p]
    if missing:
        pytest.skip(f"real images not available: {missing[0]}")
    labels = (LABELS * 3)[: len(paths)]
    table = build_table(
        {
            "sample_id": [f"ferplus/{p}" for p in paths],
            "dataset": ["ferplus"] * len(paths),
            "split": ["test"] * (len(paths) - 1) + ["train"],
            "image_path": paths,
            "label": labels,
            "label_id": [["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger"].index(x) for x in labels],
            "label_votes": [[i % 10] * 10 for i in range(len(paths))],
            "bbox": [{"x": 0.0, "y": 0.0, "w": 48.0, "h": 48.0} if "ferplus/" in p else None for p in paths],
            "flags": [["parent_flag"] if i == 0 else None for i in range(len(paths))],
        }
    )
    out = ws / "manifests" / f"{name}.parquet"
    write_manifest(table, out, dataset="ferplus", root=shared_data)
    return out


@pytest.fixture(scope="module")
def made(shared_data, tmp_path_factory):
    """One mask run over 6 FERPlus crops, a JAFFE TIFF, a colour photo and a no-face picture."""
    ws = tmp_path_factory.mktemp("ws")
    parent = _parent(shared_data, ws, FER + OTHER)
    config = SynthConfig(kind="mask", styles=("surgical", "cloth", "n95", "kn95"), seed=3)
    result = run(parent, config, out_dir=ws / "out", workers=1, workspace=Workspace(ws))
    return ws, parent, config, result


def _bytes(folder: Path) -> dict[str, bytes]:
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and ".fercurate" not in str(p)]
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


def test_manifest_rows_point_back_at_their_parents(made):
    ws, parent_path, _, result = made
    parent = read_manifest(parent_path).to_pandas().set_index("sample_id")
    m = read_manifest(result.manifest_path)
    assert m.name == "mini-masked" and m.dataset == "ferplus"
    assert Path(m.root) == ws / "out"
    df = m.to_pandas()
    # every parent but the landscape (no face: a failure row, no image)
    assert len(df) == len(parent) - 1 == result.rows and result.failed == 1
    assert not df["derived_from"].str.contains("mountain").any()
    for _, row in df.iterrows():
        p = parent.loc[row["derived_from"]]
        assert row["label"] == p["label"] and row["label_id"] == p["label_id"]
        assert list(row["label_votes"]) == list(p["label_votes"])
        assert row["split"] == p["split"]
        if p["bbox"] is not None:  # the dataset's face box is kept
            assert row["bbox"] == p["bbox"]
        else:  # the row says which detected face it masked
            assert row["bbox"]["w"] > 50 and row["bbox"]["h"] > 50
        assert row["variant"].startswith("mask:")
        assert row["variant"].split(":")[1] in ("surgical", "cloth", "n95", "kn95")
        assert row["image_path"].endswith(".png" if not row["derived_from"].endswith(".jpg") else ".jpg")
        assert row["sample_id"] == f"ferplus/{row['image_path']}" != row["derived_from"]
        assert "synthetic" in list(row["flags"])
        assert row["seed"] > 0
        img = cv2.imread(str(ws / "out" / row["image_path"]), cv2.IMREAD_UNCHANGED)
        assert (row["width"], row["height"]) == (img.shape[1], img.shape[0])
    first = df[df["derived_from"] == "ferplus/" + FER[0]].iloc[0]
    assert list(first["flags"]) == ["parent_flag", "synthetic"]
    meta = m.meta.source
    assert meta["parent"]["name"] == "mini" and meta["synth"]["seed"] == 3


def test_grayscale_stays_grayscale_and_colour_stays_colour(made, shared_data):
    ws, _, _, _ = made
    m = read_manifest(ws / "manifests" / "mini-masked.parquet").to_pandas()
    seen = set()
    for _, row in m.iterrows():
        img = cv2.imread(str(ws / "out" / row["image_path"]), cv2.IMREAD_UNCHANGED)
        src = cv2.imread(str(shared_data / row["derived_from"].split("/", 1)[1]), cv2.IMREAD_UNCHANGED)
        if src.ndim == 2:  # FERPlus PNGs: single channel in, single channel out
            assert img.ndim == 2, row["image_path"]
            seen.add("single")
        elif np.array_equal(src[..., 0], src[..., 1]) and np.array_equal(src[..., 1], src[..., 2]):
            # a grey picture stored as colour (this JAFFE TIFF is a palette image): still grey
            assert img.ndim == 3 and np.array_equal(img[..., 0], img[..., 2]), row["image_path"]
            seen.add("replicated")
        else:
            assert img.ndim == 3 and not np.array_equal(img[..., 0], img[..., 2]), row["image_path"]
            seen.add("colour")
    assert seen == {"single", "replicated", "colour"}


def test_masks_were_drawn_where_the_layer_says(made, shared_data):
    ws, _, _, result = made
    layer, meta = read_layer(result.layer_path, "synth")
    assert meta["manifest"] == "mini-masked"
    df = layer.to_pandas().set_index("sample_id")
    # every real face found by a landmark model, mask over nose/mouth/chin, eyes free
    faces = df[~df["derived_from"].str.contains("mountain")]
    assert set(faces["landmark_method"]) <= {"mediapipe", "dlib"}
    assert faces["lower_face_covered"].all() and faces["eyes_free"].all()
    assert (faces["face_covered"] > 0.2).all()
    assert set(faces["placement"]) == {"landmarks"} and faces["failure"].isna().all()
    # the picture with no face got no mask: a failure row with its reason, no file
    landscape = df[df["derived_from"].str.contains("mountain")].iloc[0]
    assert landscape["failure"].startswith("no face found") and pd.isna(landscape["landmark_method"])
    assert not (ws / "out" / landscape["image_path"]).exists()
    rejected = pq.read_table(result.rejects_path).to_pylist()
    assert [r["image_path"] for r in rejected] == ["faces/pyfeat_free-mountain-vector-01.jpg"]
    # pixels: the variant differs from its parent inside the face, not in the corners
    for sid, row in faces.iterrows():
        var = cv2.imread(str(ws / "out" / row["image_path"]), cv2.IMREAD_UNCHANGED)
        par = cv2.imread(str(shared_data / row["derived_from"].split("/", 1)[1]), cv2.IMREAD_UNCHANGED)
        if par.ndim == 3 and var.ndim == 2:
            par = cv2.cvtColor(par, cv2.COLOR_BGR2GRAY)
        assert var.shape == par.shape
        changed = np.abs(var.astype(int) - par.astype(int))
        assert changed.mean() > 2, sid
        h, w = var.shape[:2]
        corners = np.concatenate([changed[: h // 8, : w // 8].ravel(), changed[: h // 8, -w // 8 :].ravel()])
        if row["image_path"].endswith(".png"):
            assert corners.max() == 0, sid
        else:  # JPEG in, JPEG out: re-encoding noise only
            assert corners.mean() < 1.0, sid


def test_occlusion_events_flow_into_subsets(made):
    ws, _, _, result = made
    events = read_events(result.events_path)
    assert events.num_rows == result.rows
    assert set(events.column("source").to_pylist()) == {"synthetic"}
    assert set(events.column("annotator").to_pylist()) == {"fercurate-synth"}
    labels = latest_labels(events)
    assert all(list(t) == ["mask"] for t in labels["types"])
    built = build_subsets(result.manifest_path, occlusion=True, workspace=Workspace(ws))
    names = {info.name: info for info in built}
    assert "occlusion-labelled" in names and "occlusion-labelled-mask" in names
    assert names["occlusion-labelled-mask"].size == result.rows


def test_same_seed_same_bytes_any_worker_count_other_seed_differs(made, shared_data, tmp_path):
    ws, parent, config, _ = made
    first = _bytes(ws / "out")
    ws2 = tmp_path / "ws2"
    (ws2 / "manifests").mkdir(parents=True)
    again = run(parent, config, out_dir=tmp_path / "again", workers=2, workspace=Workspace(ws2))
    assert _bytes(tmp_path / "again") == first
    assert pq.read_table(again.manifest_path).column("sha256").to_pylist() == pq.read_table(
        ws / "manifests" / "mini-masked.parquet"
    ).column("sha256").to_pylist()
    other = run(parent, SynthConfig(**{**config.__dict__, "seed": 4}), out_dir=tmp_path / "other", workers=1,
                workspace=Workspace(ws2), name="mini-other")
    assert other.rows == len(first)
    other_bytes = _bytes(tmp_path / "other")
    assert set(other_bytes) != set(first) or all(other_bytes[k] != first[k] for k in first)


def test_resume_keeps_good_images_and_remakes_missing_or_torn_ones(made, tmp_path):
    ws, parent, config, _ = made
    out = tmp_path / "out"
    shutil.copytree(ws / "out", out)
    ws3 = tmp_path / "ws3"
    (ws3 / "manifests").mkdir(parents=True)
    (ws3 / "annotations").mkdir()
    for f in ("mini-masked.parquet", "mini-masked.synth.parquet"):
        shutil.copy(ws / "manifests" / f, ws3 / "manifests" / f)
    shutil.copy(ws / "annotations" / "mini-masked.occlusion.parquet", ws3 / "annotations")
    before = _bytes(out)
    names = sorted(before)
    (out / names[0]).unlink()  # lost
    (out / names[1]).write_bytes(before[names[1]][:40])  # torn by a crash
    result = run(parent, config, out_dir=out, resume=True, workers=1, workspace=Workspace(ws3))
    assert result.reused == len(names) - 2
    assert _bytes(out) == before
    assert result.events_added == 0  # already labelled by the first run
    assert read_events(result.events_path).num_rows == len(names)
    # same rows; only the stored dataset root differs (another --out folder)
    resumed = read_manifest(ws3 / "manifests" / "mini-masked.parquet").table
    assert resumed.equals(read_manifest(ws / "manifests" / "mini-masked.parquet").table)


def test_failures_are_rows_with_reasons(shared_data, workspace):
    paths = FER[:2] + ["ferplus/FER2013Test/missing.png", "faces/pyfeat_free-mountain-vector-01.jpg"]
    parent = _parent(shared_data, workspace, paths, name="bad")
    config = SynthConfig(kind="mask", styles=("kn95",), fallback=False)
    result = run(parent, config, out_dir=workspace / "out", workers=1, splits=["test"])
    assert result.rows == 2 and result.failed == 1  # the landscape is in split train: not selected
    rej = pq.read_table(rejects_path(result.manifest_path)).to_pylist()
    row = read_manifest(parent).table.column("image_path").to_pylist().index("ferplus/FER2013Test/missing.png") + 1
    assert rej[0]["image_path"] == "ferplus/FER2013Test/missing.png" and rej[0]["row"] == row
    assert rej[0]["source_file"] == str(parent)
    assert rej[0]["reason"].startswith("image file missing")
    result = run(parent, config, out_dir=workspace / "out", workers=1, name="bad-all")
    reasons = sorted(r["reason"] for r in pq.read_table(rejects_path(result.manifest_path)).to_pylist())
    assert len(reasons) == 2 and reasons[1].startswith("no face found: neither MediaPipe BlazeFace nor dlib HOG")


def test_user_templates_through_the_runner(shared_data, workspace):
    cfg = shared_data / "mask_templates" / "masks.cfg"
    if not cfg.exists():
        pytest.skip("MaskTheFace templates not available")
    parent = _parent(shared_data, workspace, FER[:3] + ["faces/pyfeat_45-m7-di-ph.jpg"])
    config = SynthConfig(kind="mask", styles=("surgical_blue", "cloth"), templates=str(cfg), each=True)
    result = run(parent, config, out_dir=workspace / "tpl", workers=1)
    assert result.rows == 8
    layer = read_layer(result.layer_path, "synth")[0].to_pandas()
    # "cloth" is also a template name: the template wins over the built-in style
    assert set(layer["variant"]) == {"mask:surgical_blue:template", "mask:cloth:template"}
    turned = layer[layer["derived_from"].str.contains("45-m7")]
    assert set(turned["view"]) == {"surgical_blue_left", "cloth_left"}
    assert layer["lower_face_covered"].all()
    with pytest.raises(InputError, match="unknown mask style 'gas_mask'"):
        run(parent, SynthConfig(kind="mask", styles=("gas_mask",), templates=str(cfg)), workers=1)


def test_bad_requests_are_clear_errors(shared_data, workspace):
    parent = _parent(shared_data, workspace, FER[:2])
    with pytest.raises(InputError, match="unknown mask style 'paper'"):
        run(parent, SynthConfig(kind="mask", styles=("paper",)), workers=1)
    with pytest.raises(InputError, match="no rows in split"):
        run(parent, SynthConfig(kind="mask", styles=("n95",)), splits=["val"], workers=1)
    with pytest.raises(InputError, match="parent dataset's root"):
        run(parent, SynthConfig(kind="mask", styles=("n95",)), out_dir=shared_data, workers=1)
    with pytest.raises(InputError, match=r"--size 1.5"):
        run(parent, SynthConfig(kind="occlude", styles=("upper",), size=1.5), workers=1)


def test_cli_occlude_and_preview(shared_data, workspace):
    parent = _parent(shared_data, workspace, FER[:4])
    cli = CliRunner()
    res = cli.invoke(app, ["synth", "occlude", str(parent), "--type", "glasses,upper,bottom,left_right", "--each",
                           "--size", "0.3", "--out", str(workspace / "occ"), "-j", "1"])
    assert res.exit_code == 0, res.output
    assert "16 images" in res.output
    m = read_manifest(workspace / "manifests" / "mini-occluded.parquet").to_pandas()
    kinds = m["variant"].str.split(":").str[1]
    assert sorted(kinds.value_counts().items()) == [("bottom", 4), ("glasses", 4), ("left_right", 4), ("upper", 4)]
    labels = latest_labels(read_events(workspace / "annotations" / "mini-occluded.occlusion.parquet"))
    by_id = dict(zip(labels["sample_id"], labels["types"]))
    for sid, variant in zip(m["sample_id"], m["variant"]):
        assert list(by_id[sid]) == [variant.split(":")[1]]
    layer, _ = read_layer(workspace / "manifests" / "mini-occluded.synth.parquet", "synth")
    covered = layer.to_pandas().set_index("occlusion_type")["face_covered"]
    assert (covered.loc["upper"] > 0.1).all() and (covered.loc["bottom"] > 0.1).all()
    # occluders are deterministic too
    res = cli.invoke(app, ["synth", "occlude", str(parent), "--type", "glasses,upper,bottom,left_right", "--each",
                           "--size", "0.3", "--out", str(workspace / "occ2"), "--name", "again", "-j", "1"])
    assert res.exit_code == 0, res.output
    assert _bytes(workspace / "occ2") == _bytes(workspace / "occ")
    sheet = workspace / "sheet.png"
    res = cli.invoke(
        app, ["synth", "preview", "mini-occluded", "-o", str(sheet), "--n", "6", "--columns", "3", "--tile", "64"]
    )
    assert res.exit_code == 0, res.output
    img = cv2.imread(str(sheet))
    assert img.shape[1] == 3 * (2 * 64 + 2) + 4 * 4 and img.shape[0] == 2 * (64 + 30) + 3 * 4
    res = cli.invoke(app, ["synth", "mask", str(parent), "--style", "paper"])
    assert res.exit_code == 1 and res.output.strip().splitlines() == [
        "error: unknown mask style 'paper'; known: surgical, cloth, n95, kn95 (user templates need --templates masks.cfg)"
    ]
