"""The LiteRT runtime behind fercurate.faces: packaged models, MediaPipe's custom ops and BlazeFace
post-processing in numpy, and agreement with mediapipe 0.10.21's own output on real faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fercurate.faces import detection as D
from fercurate.faces import mesh as M
from fercurate.faces.alignment import crop, roi_from_bbox, to_rgb
from fercurate.images import read_image

GOLDEN = Path(__file__).parent / "data" / "mesh_mediapipe_0_10_21.npz"


def test_models_are_packaged_with_licence_and_notice() -> None:
    tflite = sorted(M.MODELS.glob("*.tflite"))
    assert {p.name for p in tflite} == {
        "face_detection_full_range_sparse.tflite", "face_detection_short_range.tflite", "face_landmark.tflite",
        "face_landmark_attention_backbone.tflite", "face_landmark_attention_heads.tflite",
    }
    files = [p for p in M.MODELS.iterdir() if p.is_file()]
    assert all(p.stat().st_size < 5_000_000 for p in files)
    assert sum(p.stat().st_size for p in files) < 10_000_000
    assert "Apache License" in (M.MODELS / "LICENSE").read_text()
    notice = (M.MODELS / "NOTICE").read_text()
    for p in files:
        if p.name not in ("LICENSE", "NOTICE"):
            assert p.name in notice, f"NOTICE does not name {p.name}"


def test_ssd_anchors_match_the_models_outputs() -> None:
    short, full = D.ssd_anchors(D.SHORT_RANGE), D.ssd_anchors(D.FULL_RANGE)
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # 16x16 grid, 2 anchors per cell, then 8x8 with 6 (three stride-16 layers x 2)
    np.testing.assert_allclose(short[:2], [[0.5 / 16, 0.5 / 16]] * 2)
    np.testing.assert_allclose(short[512:518], [[0.5 / 8, 0.5 / 8]] * 6)
    np.testing.assert_allclose(full[-1], [47.5 / 48, 47.5 / 48])


def test_weighted_nms_merges_each_cluster_by_score() -> None:
    boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.1, 0.0, 1.1, 1.0], [3.0, 3.0, 4.0, 4.0]])
    scores = np.array([0.9, 0.6, 0.7])
    kps = np.arange(3 * 6 * 2, dtype=np.float64).reshape(3, 6, 2)
    out = D.weighted_nms(boxes, scores, kps, 0.3)
    assert [round(s, 2) for _, s, _ in out] == [0.9, 0.7]
    np.testing.assert_allclose(out[0][0], (0.9 * boxes[0] + 0.6 * boxes[1]) / 1.5)
    np.testing.assert_allclose(out[0][2], (0.9 * kps[0] + 0.6 * kps[1]) / 1.5)
    np.testing.assert_allclose(out[1][0], boxes[2])


def _naive_bilinear(features: np.ndarray, matrix: np.ndarray, oh: int, ow: int) -> np.ndarray:
    """TransformTensorBilinear pixel by pixel, as MediaPipe's kernel loops."""
    h, w, c = features.shape
    xt, yt = matrix[0].astype(np.float64).copy(), matrix[1].astype(np.float64).copy()
    xt[3] += xt[0] * 0.5 + xt[1] * 0.5 - 0.5
    yt[3] += yt[0] * 0.5 + yt[1] * 0.5 - 0.5
    out = np.zeros((oh, ow, c))
    for y in range(oh):
        for x in range(ow):
            tx, ty = xt[0] * x + xt[1] * y + xt[3], yt[0] * x + yt[1] * y + yt[3]
            if tx < 0 or tx > w - 1 or ty < 0 or ty > h - 1:
                continue
            x0, y0 = int(np.floor(tx)), int(np.floor(ty))

            def at(yy: int, xx: int) -> np.ndarray:
                return features[yy, xx] if 0 <= yy < h and 0 <= xx < w else np.zeros(c)

            fx, fy = tx - x0, ty - y0
            upper = (1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1)
            lower = (1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1)
            out[y, x] = fy * lower + (1 - fy) * upper
    return out


def test_transform_tensor_bilinear_matches_the_kernel_loop() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(12, 10, 3)).astype(np.float32)
    a = np.radians(25.0)
    matrix = np.eye(4, dtype=np.float32)
    matrix[:2, :2] = 0.9 * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    matrix[:2, 3] = (2.0, -1.5)  # part of the grid falls outside the map: zeros there
    got = M.transform_tensor_bilinear(features, matrix, 8, 8)
    want = _naive_bilinear(features, matrix, 8, 8)
    assert (want == 0).all(axis=2).any() and not (want == 0).all()
    np.testing.assert_allclose(got, want, atol=1e-5)
    both = M.transform_tensor_bilinear(features, np.stack([matrix, np.eye(4, dtype=np.float32)]), 8, 8)
    np.testing.assert_allclose(both[0], got)


def test_landmarks_to_transform_matrix_frames_the_subset() -> None:
    pts = np.zeros((4, 3), np.float32)
    pts[:, :2] = [[10, 20], [30, 20], [30, 30], [10, 30]]  # level box 20 x 10, centre (20, 25)
    opts = {"left_rotation_idx": 0, "right_rotation_idx": 1, "subset_idxs": [0, 1, 2, 3],
            "output_width": 16, "output_height": 16, "scale_x": 1.5, "scale_y": 1.5}
    m = M.landmarks_to_transform_matrix(pts.ravel(), opts)
    np.testing.assert_allclose(m[:2, :2], np.diag([1.5 * 20 / 16, 1.5 * 10 / 16]), atol=1e-6)
    np.testing.assert_allclose(M.transform_landmarks(np.array([[8.0, 8.0]]), m), [[20.0, 25.0]], atol=1e-5)


def test_mesh_rejects_a_wrong_crop() -> None:
    with pytest.raises(ValueError, match="192x192x3 uint8"):
        M.get_landmarker(False).run([np.zeros((96, 96, 3), np.uint8)])


@pytest.mark.realdata
@pytest.mark.parametrize("attention", [False, True])
def test_mesh_matches_mediapipe_0_10_21(ferplus_root: Path, attention: bool) -> None:
    """Same crops as mediapipe 0.10.21's FaceMesh graph saw -> the same points (stored in tests/data)."""
    golden = np.load(GOLDEN)
    crops = []
    for name in golden["files"]:
        img = read_image(ferplus_root / "FER2013Test" / str(name))
        crops.append(to_rgb(crop(img, roi_from_bbox((0.0, 0.0, 48.0, 48.0), 1.3), M.INPUT_SIZE)))
    n = 478 if attention else 468
    points, scores = M.MeshLandmarker(attention=attention).run(crops)
    assert points.shape == (len(crops), n, 3)
    np.testing.assert_allclose(points, golden[f"points{n}"], atol=2e-3)
    np.testing.assert_allclose(scores, golden[f"scores{n}"], atol=1e-5)
