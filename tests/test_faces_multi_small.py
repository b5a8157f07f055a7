"""The small-face pass of fercurate.faces.multi: faces too small for the whole-frame detectors in large
pictures, checked by the face mesh so the tiles add no false faces (issue 21)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fercurate.demo.faces import base_faces
from fercurate.faces import detection, multi
from fercurate.faces.detection import _tile_starts, detect_faces, detect_small_faces
from fercurate.faces.multi import LARGE_PICTURE, SMALL_FACES, _overlap, find_faces

# The one face of pyfeat_BWPictureHuman.jpg (x, y, w, h in full-resolution pixels, read off the picture).
BW_FACE = (830.0, 400.0, 220.0, 240.0)


def _canvas(h: int = 1500, w: int = 2000) -> np.ndarray:
    ramp = np.linspace(50, 210, w, dtype=np.uint8)
    return np.dstack([np.tile(ramp, (h, 1))] * 3)


@pytest.fixture(scope="module")
def small_turned_face() -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The demo's astronaut, rolled 45 degrees, 100 px wide in a 2000x1500 gradient: a face neither
    BlazeFace on the whole frame nor dlib's HOG finds (too small for one, too rolled for the other)."""
    photos = {f.name: f.image for f in base_faces(include_lfw=False)}
    if "astronaut" not in photos:
        pytest.skip("the demo's astronaut photo is not available")
    face = photos["astronaut"]
    turned = cv2.warpAffine(face, cv2.getRotationMatrix2D((128, 128), 45, 1.0), (256, 256), borderMode=cv2.BORDER_REFLECT)
    canvas = _canvas()
    x, y, side = 1300, 500, 100
    canvas[y : y + side, x : x + side] = cv2.resize(turned, (side, side), interpolation=cv2.INTER_AREA)
    return canvas, (x, y, side, side)


def test_tiles_overlap_by_half_and_reach_both_edges():
    for n, tile in [(2560, 640), (1912, 853), (1000, 333), (700, 640), (300, 640)]:
        starts = _tile_starts(n, tile)
        assert starts[0] == 0 and starts[-1] + tile >= n
        if len(starts) > 1:
            assert np.diff(starts).max() <= tile / 2 and starts[-1] + tile == n
    # a face up to half a tile wide lies whole inside some tile, wherever it is
    starts = _tile_starts(1912, 853)
    for x in range(0, 1912 - 426, 7):
        assert any(s <= x and x + 426 <= s + 853 for s in starts), x


def test_small_turned_face_found_once_by_the_tiles(small_turned_face):
    canvas, (x, y, s, _) = small_turned_face
    assert detect_faces(canvas) == []  # the whole-frame detectors miss it
    faces = find_faces(canvas)
    assert len(faces) == 1 and faces[0].method == SMALL_FACES
    assert _overlap(faces[0].box, (x, y, s, s)) > 0.6
    assert 0.6 * s < faces[0].box[2] < 1.6 * s


def test_large_picture_without_a_face_gets_none():
    canvas = _canvas()
    h, w = canvas.shape[:2]
    # a drawn scene: sun, hills, a lake, a few rectangles and discs (no face)
    cv2.circle(canvas, (w * 3 // 4, h // 5), 90, (120, 220, 255), -1, cv2.LINE_AA)
    cv2.fillPoly(canvas, [np.array([[0, h * 2 // 3], [w // 4, h // 3], [w // 2, h * 3 // 5], [w, h // 3], [w, h], [0, h]])],
                 (70, 120, 80), cv2.LINE_AA)
    for k in range(12):
        cv2.circle(canvas, (150 + 150 * k, h * 4 // 5), 30 + 3 * k, (40 + 15 * k, 90, 200 - 10 * k), -1, cv2.LINE_AA)
        cv2.rectangle(canvas, (100 + 160 * k, 200), (160 + 160 * k, 260 + 10 * k), (200, 200 - 12 * k, 90), -1)
    assert find_faces(canvas) == []


def test_small_pictures_pay_nothing(monkeypatch):
    """FERPlus-sized crops and ordinary photos never run the tiles."""

    def tiles(*_args, **_kwargs):
        raise AssertionError("the small-face pass ran on a small picture")

    monkeypatch.setattr(detection, "detect_small_faces", tiles)
    monkeypatch.setattr(multi, "small_faces", lambda *_: tiles())
    photos = [f.image for f in base_faces(include_lfw=False)]
    for img in [cv2.resize(p, (48, 48), interpolation=cv2.INTER_AREA) for p in photos] + photos:
        find_faces(img)
    big = _canvas(LARGE_PICTURE - 1, LARGE_PICTURE - 1)
    big[100:356, 100:356] = photos[0]
    find_faces(big)


@pytest.mark.realdata
def test_bw_picture_small_turned_face(faces_dir):
    """pyfeat_BWPictureHuman.jpg: the tiles find its small, turned face, which the whole frame misses.

    The face mesh does not confirm it (presence 0.000 on every box the tiles give; the face is in
    profile, shouting, in heavy film grain), and no detector score separates it from non-faces
    (benchmarks/tile_confirm.py), so find_faces does not count it; whatever it does count must be that
    face, never a false one elsewhere in the picture.
    """
    path = faces_dir / "pyfeat_BWPictureHuman.jpg"
    if not path.exists():
        pytest.skip(f"{path} not available")
    image = cv2.imread(str(path))
    assert detect_faces(image) == []
    hits = detect_small_faces(image)
    best = max(hits, key=lambda f: f.score)
    assert _overlap(multi._face_box(best.bbox, "mediapipe"), BW_FACE) > 0.5
    assert best.score >= 0.6
    assert all(_overlap(f.box, BW_FACE) > 0.5 for f in find_faces(image))


@pytest.mark.realdata
def test_tile_hit_on_part_of_a_known_face_is_not_a_face(faces_dir, monkeypatch):
    """insightface_t1.jpg with BlazeFace's threshold lowered to 0.3: a tile hit lies a third on a known
    face's chin and shirt, where the mesh draws a face at presence 0.999; it must not become a 7th face."""
    path = faces_dir / "insightface_t1.jpg"
    if not path.exists():
        pytest.skip(f"{path} not available")
    image = cv2.imread(str(path))
    known = [f.box for f in find_faces(image)]
    assert len(known) == 6
    monkeypatch.setattr(detection, "MIN_SCORE", 0.3)
    chin = (757.0, 424.0, 150.0, 150.0)
    hits = [multi._face_box(f.bbox, "mediapipe") for f in detect_small_faces(image)]
    assert any(_overlap(h, chin) > 0.8 for h in hits)  # the hit is there...
    assert multi.small_faces(image, known) == []  # ...and is not taken for a face
    assert len(find_faces(image)) == 6
