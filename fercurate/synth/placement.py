"""Where the face is: 68 landmarks for each image from a chain of methods, each result labelled.

The chain tries the MediaPipe face mesh, then dlib's 68-point predictor (both through
:mod:`fercurate.faces.landmarks`), and, when both fail or give an implausible shape, falls back to the
mean FER2013-crop shape placed in the face box: method ``prior``, confidence 0. The fallback is only
allowed per face by the caller, where the manifest itself says the picture is a face crop (a dataset
face box, or a dataset of aligned crops): a face box found by a detector is no such promise, and a
picture with no face must get no mask. Every fallback keeps the reasons the earlier methods gave.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fercurate.synth import shapes as S
from fercurate.synth.mesh_correction import correct_mesh
from fercurate.synth.outline import FaceFrame, coverage, mask_outline

DEFAULT_METHODS: tuple[str, ...] = ("mediapipe", "dlib")
PRIOR = "prior"


@dataclass
class Located:
    """68 landmarks of one face and how they were obtained."""

    points: np.ndarray | None
    method: str  # "mediapipe", "dlib", "prior" or "" when nothing could be placed
    confidence: float
    notes: list[str] = field(default_factory=list)  # why earlier methods were not used

    @property
    def ok(self) -> bool:
        return self.points is not None

    @property
    def failure(self) -> str | None:
        return None if self.ok else "; ".join(self.notes) or "no landmarks"


def to68(result: object) -> np.ndarray:
    """68 iBUG points (float64) from a :class:`fercurate.faces.landmarks.FaceLandmarks`."""
    return np.asarray(result.ibug68(), dtype=np.float64)  # type: ignore[attr-defined]


def implausible(points: np.ndarray, width: int, height: int) -> str | None:
    """Why a landmark set cannot be a face in this image (None when it looks like one)."""
    if not np.all(np.isfinite(points)):
        return "non-finite landmarks"
    frame = FaceFrame.from_points(points)
    if frame.length < 4.0:
        return f"face too small ({frame.length:.1f} px nose-to-chin)"
    span = float(np.ptp(points, axis=0).max())
    if span > 4.0 * max(width, height):
        return "landmarks spread far outside the image"
    inside = (points[:, 0] > -0.25 * width) & (points[:, 0] < 1.25 * width)
    inside &= (points[:, 1] > -0.25 * height) & (points[:, 1] < 1.25 * height)
    if inside.mean() < 0.75:
        return "most landmarks outside the image"
    q = frame.to_frame(points)
    eyes_y = q[S.EYES, 1].mean()
    if not (eyes_y < q[S.NOSE_TIP, 1] < q[S.MOUTH_OUTER, 1].mean() < q[S.CHIN, 1] + 1e-6):
        return "eyes, nose, mouth and chin out of order"
    covered, eyes_free, _ = coverage(mask_outline(points, frame=frame), points)
    if not (covered and eyes_free):
        return "no mask outline fits these landmarks (profile view or broken landmarks)"
    return None


def outside_box(points: np.ndarray, bbox: Sequence[float]) -> str | None:
    """Why landmarks cannot belong to the detected face ``bbox`` (None when they do).

    A landmark model handed a detector's box can still return a face-sized shape somewhere else (or a
    frame-sized one); a mask drawn from it would not be on that face.
    """
    x, y, w, h = (float(v) for v in bbox)
    frame = FaceFrame.from_points(points)
    nose = points[S.NOSE_TIP]
    if not (x - 0.25 * w <= nose[0] <= x + 1.25 * w and y - 0.25 * h <= nose[1] <= y + 1.25 * h):
        return "landmarks not on the detected face (nose tip outside its box)"
    if frame.length > 1.5 * max(w, h):
        return f"landmark face {frame.length:.0f} px nose-to-chin, larger than the detected face ({max(w, h):.0f} px)"
    return None


def prior_points(width: int, height: int, bbox: Sequence[float] | None) -> np.ndarray:
    """The fallback: the mean FER2013-crop shape in ``bbox`` (x, y, w, h) or the whole image."""
    if bbox is not None and bbox[2] > 1 and bbox[3] > 1:
        return S.crop_prior(width, height, bbox)
    return S.crop_prior(width, height)


# Face-mesh settings: "fast" = the 468-point base model, one pass on the face box; "accurate" = the
# 478-point attention model with a second pass re-cropped around the first (about 2.5x slower; on
# 500 FERPlus test faces the fast points lie 0.04 face lengths from the accurate ones on average,
# inside the mask's own 0.05 margin).
LANDMARK_MODES: dict[str, dict[str, object]] = {
    "fast": {"refine": False, "passes": 1},
    "accurate": {"refine": True, "passes": 2},
}


def locate_batch(
    images: Sequence[np.ndarray],
    bboxes: Sequence[Sequence[float] | None],
    *,
    methods: Sequence[str] = DEFAULT_METHODS,
    fallback: bool | Sequence[bool] = True,
    mode: str = "fast",
    detected: Sequence[bool] | None = None,
) -> list[Located]:
    """Landmarks for many images: each method runs once over the images still unplaced (batched).

    ``fallback``: for all images or per image, whether the mean shape may stand in for failed methods.
    ``detected``: per image, whether its box came from a face detector (landmarks must then lie on it).
    """
    from fercurate.faces import landmarks as lm

    mesh_options = LANDMARK_MODES[mode]
    n = len(images)
    out: list[Located | None] = [None] * n
    notes: list[list[str]] = [[] for _ in range(n)]
    todo = list(range(n))
    for method in methods:
        if not todo:
            break
        options = mesh_options if method == "mediapipe" else {}
        results = lm.detect_batch([images[i] for i in todo], [bboxes[i] for i in todo], method, **options)
        still = []
        for i, res in zip(todo, results):
            if res.failure is not None:
                notes[i].append(f"{method}: {res.failure}")
                still.append(i)
                continue
            pts = to68(res)
            if method == "mediapipe":
                pts = correct_mesh(pts)  # small faces: towards the iBUG convention (see mesh_correction)
            h, w = images[i].shape[:2]
            why = implausible(pts, w, h)
            if why is None and detected is not None and detected[i] and bboxes[i] is not None:
                why = outside_box(pts, bboxes[i])  # type: ignore[arg-type]
            if why is not None:
                notes[i].append(f"{method}: {why}")
                still.append(i)
                continue
            out[i] = Located(pts, method, float(res.score), notes[i])
        todo = still
    allowed = [fallback] * n if isinstance(fallback, bool) else list(fallback)
    for i in todo:
        h, w = images[i].shape[:2]
        if allowed[i]:
            out[i] = Located(prior_points(w, h, bboxes[i]), PRIOR, 0.0, notes[i])
        else:
            out[i] = Located(None, "", 0.0, notes[i])
    return [o for o in out if o is not None]
