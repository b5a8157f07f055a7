"""dlib's 68-point iBUG landmark predictor, with model files located inside ``face_recognition_models``.

The predictor was trained on boxes from dlib's HOG detector, so a dataset face box is first matched to
a HOG detection run around it; when the detector finds nothing there the box is converted to the HOG
box convention (:data:`HOG_FROM_TIGHT`) and the predictor still runs. Faces smaller than
:data:`MIN_FACE` pixels are upscaled first.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from fercurate.errors import FercurateError
from fercurate.faces.alignment import Bbox, to_gray
from fercurate.faces.detection import iou

MIN_FACE = 160  # upscale so the face box is at least this many pixels wide
# dlib HOG boxes are tighter than a whole-face crop: (dx, dy, dw, dh) as fractions of the given box.
HOG_FROM_TIGHT = (0.08, 0.15, 0.78, 0.78)  # median HOG box on 1,500 FERPlus validation faces


def model_path(name: str = "shape_predictor_68_face_landmarks.dat") -> Path:
    """Path of a model file shipped by ``face_recognition_models`` (found without pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FercurateError("package face_recognition_models is not installed (pip install face-recognition-models)")
    for base in spec.submodule_search_locations:
        path = Path(base) / "models" / name
        if path.exists():
            return path
    raise FercurateError(f"face_recognition_models has no models/{name}")


@lru_cache(maxsize=None)
def _predictor():  # noqa: ANN202 - dlib object
    import dlib

    return dlib.shape_predictor(str(model_path()))


@lru_cache(maxsize=None)
def _detector():  # noqa: ANN202
    import dlib

    return dlib.get_frontal_face_detector()


def landmarks68(
    image: np.ndarray, bbox: Bbox | None = None
) -> tuple[np.ndarray | None, Bbox | None, float, str | None]:
    """68 iBUG points (image pixels) for the face in ``bbox`` (or the largest HOG detection).

    Returns ``(points, box used, score, failure)``; the score is a sigmoid of the HOG margin of the
    detection used (or of the best margin found near a given box, even below the detector's threshold).
    """
    import dlib

    gray = to_gray(image)
    if bbox is None:
        h, w = gray.shape[:2]
        f = max(1.0, MIN_FACE / max(min(h, w), 1))
        region, origin = gray, (0.0, 0.0)
        upsample, threshold = (1 if f == 1.0 else 0), 0.0
    else:
        # Work on the box plus a margin, scaled so the face is at least MIN_FACE pixels.
        x, y, w, h = bbox
        m = 0.25 * max(w, h)
        x0, y0 = int(np.floor(max(0.0, x - m))), int(np.floor(max(0.0, y - m)))
        x1 = int(np.ceil(min(gray.shape[1], x + w + m)))
        y1 = int(np.ceil(min(gray.shape[0], y + h + m)))
        region, origin = gray[y0:y1, x0:x1], (float(x0), float(y0))
        f = max(1.0, MIN_FACE / max(w, h, 1.0))
        upsample, threshold = 0, -1.0
    rh, rw = region.shape[:2]
    if rh == 0 or rw == 0:
        return None, None, 0.0, "face box outside the image"
    big = cv2.resize(region, (round(rw * f), round(rh * f)), interpolation=cv2.INTER_CUBIC) if f > 1 else region
    rects, margins, _ = _detector().run(big, upsample, threshold)
    dets = [
        ((r.left() / f + origin[0], r.top() / f + origin[1], r.width() / f, r.height() / f), float(m))
        for r, m in zip(rects, margins)
    ]
    if bbox is None:
        if not dets:
            return None, None, 0.0, "no face found"
        box, margin = max(dets, key=lambda d: d[0][2] * d[0][3])
    else:
        near = [d for d in dets if iou(d[0], _hog_box(bbox)) > 0.3]
        box, margin = max(near, key=lambda d: d[1]) if near else (_hog_box(bbox), -1.0)
    to_big = lambda v, o: round((v - o) * f)  # noqa: E731 - tiny local helper
    rect = dlib.rectangle(
        to_big(box[0], origin[0]), to_big(box[1], origin[1]),
        to_big(box[0] + box[2], origin[0]), to_big(box[1] + box[3], origin[1]),
    )
    shape = _predictor()(big, rect)
    pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
    pts = pts / f + np.array(origin)
    return pts.astype(np.float32), box, float(1.0 / (1.0 + np.exp(-2.0 * margin))), None


def _hog_box(bbox: Bbox) -> Bbox:
    x, y, w, h = bbox
    dx, dy, dw, dh = HOG_FROM_TIGHT
    return (x + dx * w, y + dy * h, dw * w, dh * h)
