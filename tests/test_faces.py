"""fercurate.faces: landmarks from the real MediaPipe mesh and dlib models on real face images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fercurate.faces import IBUG68_FROM_MEDIAPIPE, REGIONS_68, REGIONS_MEDIAPIPE, detect, detect_batch
from fercurate.faces.alignment import Roi, align_face, crop, roi_from_landmarks
from fercurate.faces.dlib68 import model_path
from fercurate.images import read_image


INNER = list(range(17, 68))  # jaw contours are defined differently by the two models


def _nme(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance over the inner 51 of 68 points, in units of ``b``'s outer-eye-corner distance."""
    return float(np.linalg.norm(a[INNER] - b[INNER], axis=1).mean() / np.linalg.norm(b[36] - b[45]))


def test_index_map_is_a_valid_68_point_scheme() -> None:
    assert len(IBUG68_FROM_MEDIAPIPE) == 68
    assert len(set(IBUG68_FROM_MEDIAPIPE)) == 68
    assert all(0 <= i < 468 for i in IBUG68_FROM_MEDIAPIPE)
    assert set(REGIONS_68) <= set(REGIONS_MEDIAPIPE)
    for name in ("jaw", "nose_bridge", "nose_tip", "mouth", "chin", "eye_left", "eye_right"):
        assert REGIONS_68[name] and REGIONS_MEDIAPIPE[name]


@pytest.mark.realdata
def test_face_detector_uses_full_range_model_only_when_needed(faces_dir: Path) -> None:
    """A close-up face is the short-range model's own detection; a small face far from the camera,
    which the short-range model misses, is still found by the full-range model."""
    from fercurate.faces import detection as D
    from fercurate.faces.alignment import to_rgb

    photo = read_image(faces_dir / "pyfeat_single_face.jpg")
    near = D.detect_mediapipe(photo)
    short = D._blazeface(False)(to_rgb(photo))
    assert near and short and near[0].score >= D.CONFIDENT
    assert near[0].score == pytest.approx(short[0][1])
    canvas = np.full((720, 720, 3), 128, np.uint8)
    small = cv2.resize(photo, (100, round(100 * photo.shape[0] / photo.shape[1])))
    canvas[300 : 300 + small.shape[0], 200:300] = small
    assert not D._blazeface(False)(to_rgb(canvas))
    far = D.detect_mediapipe(canvas)
    assert far, "the full-range model should find the small face"
    x, y, w, h = far[0].bbox
    assert 200 <= x + w / 2 <= 300 and 300 <= y + h / 2 <= 300 + small.shape[0]


@pytest.mark.realdata
@pytest.mark.parametrize("method", ["mediapipe", "dlib"])
def test_detect_real_face_without_box(faces_dir: Path, method: str) -> None:
    img = read_image(faces_dir / "prnet_0.jpg")
    lm = detect(img, method=method)
    assert lm.ok, lm.failure
    assert lm.kind == ("mediapipe478" if method == "mediapipe" else "dlib68")
    assert lm.points.shape == ((478, 2) if method == "mediapipe" else (68, 2))
    assert lm.points.dtype == np.float32
    assert 0.5 <= lm.score <= 1.0
    x, y, w, h = lm.bbox
    inside = (lm.points[:, 0] > x - 0.3 * w) & (lm.points[:, 0] < x + 1.3 * w)
    assert inside.mean() > 0.95
    left, right = lm.eye_centres()
    assert left[0] < right[0]  # eye on the image's left really is on the left
    assert lm.region("mouth")[:, 1].mean() > left[1] + 0.3 * h  # mouth below the eyes


@pytest.mark.realdata
def test_mediapipe_and_dlib_agree_through_the_index_map(faces_dir: Path) -> None:
    for name in ("prnet_0.jpg", "pyfeat_single_face.jpg", "prnet_4.jpg"):
        img = read_image(faces_dir / name)
        d = detect(img, method="dlib")
        m = detect(img, bbox=d.bbox, method="mediapipe")
        assert d.ok and m.ok
        assert _nme(m.ibug68(), d.points) < 0.05, name


@pytest.mark.realdata
def test_no_face_and_non_face_crops_are_failures_not_exceptions(faces_dir: Path) -> None:
    landscape = cv2.resize(read_image(faces_dir / "pyfeat_free-mountain-vector-01.jpg"), (640, 360))
    for method in ("mediapipe", "dlib"):
        lm = detect(landscape, method=method)
        assert not lm.ok and lm.failure == "no face found"
        assert lm.points.shape[0] in (68, 478) and not lm.points.any()
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (120, 120), dtype=np.uint8)
    lm = detect(noise, bbox=(0, 0, 120, 120))
    assert not lm.ok and "presence score" in lm.failure


@pytest.mark.realdata
def test_tiny_ferplus_faces_with_whole_image_box(ferplus_root: Path) -> None:
    files = sorted((ferplus_root / "FER2013Test").glob("*.png"))[:40]
    imgs = [read_image(f, color=False) for f in files]
    assert imgs[0].shape == (48, 48)
    boxes = [(0, 0, 48, 48)] * len(imgs)
    mesh = detect_batch(imgs, boxes, "mediapipe", refine=False)
    dl = detect_batch(imgs, boxes, "dlib")
    assert sum(m.ok for m in mesh) >= 34
    assert all(d.ok for d in dl)  # with a given box dlib always predicts
    both = [(m, d) for m, d in zip(mesh, dl) if m.ok]
    med = np.median([_nme(m.ibug68(), d.points) for m, d in both])
    assert med < 0.09
    for m in mesh:
        if m.ok:
            assert m.points.min() > -10 and m.points.max() < 58


@pytest.mark.realdata
def test_mirrored_image_mirrors_landmarks(faces_dir: Path) -> None:
    img = read_image(faces_dir / "pyfeat_single_face.jpg")
    a = detect(img)
    b = detect(cv2.flip(img, 1))
    w = img.shape[1]
    # The nose tip is on the symmetry axis: it must land on the mirrored position.
    tip_a, tip_b = a.points[4], b.points[4]
    assert abs((w - 1 - tip_a[0]) - tip_b[0]) < 3 and abs(tip_a[1] - tip_b[1]) < 3
    la, ra = a.eye_centres()
    lb, rb = b.eye_centres()
    assert abs((w - 1 - la[0]) - rb[0]) < 4  # the left eye becomes the right one


@pytest.mark.realdata
def test_gray_and_bgra_inputs(faces_dir: Path) -> None:
    img = read_image(faces_dir / "prnet_0.jpg")
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(img, cv2.COLOR_BGR2BGRA)
    ref = detect(img, method="mediapipe", refine=False)
    for variant in (gray, bgra):
        lm = detect(variant, bbox=ref.bbox, method="mediapipe", refine=False)
        assert lm.ok and lm.kind == "mediapipe468"
        assert np.abs(lm.points - detect(img, bbox=ref.bbox, refine=False).points).mean() < 3


def test_roi_matrix_round_trip() -> None:
    roi = Roi(40.0, 60.0, 80.0, np.deg2rad(25.0))
    pts = np.array([[10.0, 20.0], [100.0, 5.0], [40.0, 60.0]])
    m = roi.matrix(192)
    in_crop = pts @ m[:, :2].T + m[:, 2]
    assert np.allclose(in_crop[2], [96, 96])
    assert np.allclose(roi.to_image(in_crop, 192), pts)


def test_roi_from_landmarks_levels_a_rotated_pair() -> None:
    pts = np.array([[0.0, 0.0], [10.0, 10.0], [5.0, 5.0]])
    roi = roi_from_landmarks(pts, 0, 1, scale=1.0)
    assert np.isclose(np.rad2deg(roi.angle), 45.0)
    img = np.zeros((20, 20), np.uint8)
    img[5, 5] = 255
    out = crop(img, roi, 32)
    assert out.shape == (32, 32)


def test_align_face_puts_eyes_level_at_the_requested_place() -> None:
    img = np.zeros((200, 200, 3), np.uint8)
    le, re = (60.0, 90.0), (130.0, 110.0)
    chip, m = align_face(img, le, re, size=100, eye_distance=0.4, eye_height=0.4)
    eyes = np.array([le, re]) @ m[:, :2].T + m[:, 2]
    assert chip.shape == (100, 100, 3)
    assert np.allclose(eyes[:, 1], 40.0) and np.allclose(eyes[1, 0] - eyes[0, 0], 40.0)


def test_dlib_model_is_found_in_the_package() -> None:
    path = model_path()
    assert path.name == "shape_predictor_68_face_landmarks.dat" and path.stat().st_size > 1_000_000


def test_unknown_method_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown landmark method"):
        detect(np.zeros((10, 10), np.uint8), method="openface")
