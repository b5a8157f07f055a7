"""Facial landmarks behind one call: ``detect(image, bbox=None, method="mediapipe" | "dlib")``.

* ``mediapipe``: the MediaPipe face mesh (478 points with ``refine=True``: refined eyes, lips and
  irises; 468 without) run on a crop around the face (:mod:`fercurate.faces.mesh`). Two passes: the
  first on a square ROI 1.5x the face box, the second on the ROI the first pass's landmarks give
  (rotated so the eyes are level), as MediaPipe's own tracker does.
* ``dlib``: dlib's 68-point iBUG predictor (:mod:`fercurate.faces.dlib68`).

A given ``bbox`` (x, y, w, h in pixels; e.g. AffectNet's face box, or the whole 48x48 FERPlus image)
skips detection; without one the largest face found by :mod:`fercurate.faces.detection` is used.
Tiny faces are upscaled on the way (the mesh always sees a 192x192 crop). Points are always in the
input image's pixel coordinates, so callers never see crops.

Index maps let callers use either scheme: :data:`IBUG68_FROM_MEDIAPIPE` gives, for each of the 68
iBUG points, the mesh vertex that plays its role, and :data:`REGIONS_68` / :data:`REGIONS_MEDIAPIPE`
name the jaw contour, eyebrows, nose bridge and tip, eyes, mouth and chin in both schemes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fercurate.faces.alignment import Bbox, Roi, crop, roi_from_bbox, roi_from_landmarks, to_rgb

METHODS: tuple[str, ...] = ("mediapipe", "dlib")
KINDS: tuple[str, ...] = ("dlib68", "mediapipe478", "mediapipe468")

# Mesh ROI side as a multiple of the face box's longer side: MediaPipe's 1.5 around its own detections
# and landmarks; 1.3 around dataset boxes, which are looser than BlazeFace's (on 1,500 FERPlus test
# faces the mesh found 95.1% at 1.3 vs 94.3% at 1.5 and 93.0% at 1.1).
ROI_SCALE = 1.5
BBOX_ROI_SCALE = 1.3
# Below this face-presence probability the mesh result is reported as a failure.
MIN_MESH_SCORE = 0.5

# --- index maps ----------------------------------------------------------------------------------
# iBUG 68 (0-based): jaw 0-16 (image left -> right), brows 17-21 / 22-26, nose bridge 27-30, nose
# base 31-35, eyes 36-41 / 42-47, outer lips 48-59, inner lips 60-67. For each, the MediaPipe mesh
# vertex with the smallest median distance to dlib's point over 226 faces (JAFFE + faces/ test images,
# distances in inter-ocular units; median error 0.02-0.04 inside the face, 0.05-0.10 on the jaw).
IBUG68_FROM_MEDIAPIPE: tuple[int, ...] = (
    127, 227, 177, 215, 172, 136, 149, 148, 152, 400, 378, 365, 367, 435, 401, 447, 356,
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    168, 197, 5, 4, 240, 97, 2, 326, 460,
    33, 160, 158, 155, 153, 144, 382, 385, 387, 263, 373, 380,
    61, 40, 37, 0, 267, 269, 291, 405, 314, 17, 84, 91,
    78, 38, 13, 268, 308, 317, 14, 87,
)

REGIONS_68: dict[str, tuple[int, ...]] = {
    "jaw": tuple(range(0, 17)),
    "chin": (7, 8, 9),
    "brow_left": tuple(range(17, 22)),  # on the image's left
    "brow_right": tuple(range(22, 27)),
    "nose_bridge": (27, 28, 29, 30),
    "nose_tip": (30,),
    "nose_base": tuple(range(31, 36)),
    "eye_left": tuple(range(36, 42)),
    "eye_right": tuple(range(42, 48)),
    "mouth_outer": tuple(range(48, 60)),
    "mouth_inner": tuple(range(60, 68)),
    "mouth": tuple(range(48, 68)),
}
REGIONS_MEDIAPIPE: dict[str, tuple[int, ...]] = {
    name: tuple(IBUG68_FROM_MEDIAPIPE[i] for i in idx) for name, idx in REGIONS_68.items()
}
# Mesh-only extras: the full face oval (silhouette-like ring, clockwise from the forehead) and irises.
REGIONS_MEDIAPIPE["face_oval"] = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
    148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)
REGIONS_MEDIAPIPE["iris_left"] = (468, 469, 470, 471, 472)  # 478-point kind only; 468 is the centre
REGIONS_MEDIAPIPE["iris_right"] = (473, 474, 475, 476, 477)

# Outer eye corners (image left, image right) used to level ROIs.
_EYE_CORNERS = {"mediapipe": (33, 263), "dlib68": (36, 45)}


@dataclass(frozen=True)
class FaceLandmarks:
    """Landmarks of one face, in the input image's pixel coordinates.

    ``points`` (N, 2) float32: 68 for ``kind="dlib68"``, 478/468 for ``mediapipe478/468`` (zeros
    when ``failure`` is set). ``depth`` (N,) float32 for the mesh: relative depth in the same pixel
    scale, smaller = nearer the camera (None for dlib). ``bbox`` (x, y, w, h): the face box used.
    ``score``: face-presence probability (mesh) or a sigmoid of the HOG margin (dlib), in [0, 1].
    ``failure``: None, or why no landmarks were found (e.g. "no face found").
    """

    points: np.ndarray
    kind: str
    bbox: Bbox | None
    score: float
    failure: str | None = None
    depth: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def ibug68(self) -> np.ndarray:
        """The 68 iBUG points, whichever model produced these landmarks."""
        if self.kind == "dlib68":
            return self.points
        return self.points[list(IBUG68_FROM_MEDIAPIPE)]

    def region(self, name: str) -> np.ndarray:
        """Points of a named region (see REGIONS_68 / REGIONS_MEDIAPIPE), e.g. ``region("mouth")``."""
        table = REGIONS_68 if self.kind == "dlib68" else REGIONS_MEDIAPIPE
        if name not in table:
            raise KeyError(f"unknown region {name!r}; known: {', '.join(sorted(table))}")
        return self.points[list(table[name])]

    def eye_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Centres of the eye on the image's left and the eye on its right."""
        return self.region("eye_left").mean(axis=0), self.region("eye_right").mean(axis=0)


def _failed(kind: str, n: int, bbox: Bbox | None, reason: str, score: float = 0.0) -> FaceLandmarks:
    return FaceLandmarks(np.zeros((n, 2), np.float32), kind, bbox, float(score), reason, None)


def detect(
    image: np.ndarray,
    bbox: Bbox | Sequence[float] | None = None,
    method: str = "mediapipe",
    *,
    refine: bool = True,
    passes: int = 2,
) -> FaceLandmarks:
    """Landmarks of the face in ``bbox`` (or of the largest detected face) in a BGR/gray image.

    ``refine`` (mesh only): 478 points from the attention model, else 468 from the faster base model.
    ``passes`` (mesh only): 2 re-crops around the first pass's landmarks (more accurate, 2x slower).
    """
    return detect_batch([image], [bbox], method, refine=refine, passes=passes)[0]


def detect_batch(
    images: Sequence[np.ndarray],
    bboxes: Sequence[Bbox | Sequence[float] | None] | None = None,
    method: str = "mediapipe",
    *,
    refine: bool = True,
    passes: int = 2,
) -> list[FaceLandmarks]:
    """:func:`detect` for many images at once (one call into the mesh runtime for all their crops)."""
    if method not in METHODS:
        raise ValueError(f"unknown landmark method {method!r} (use one of {', '.join(METHODS)})")
    if bboxes is None:
        bboxes = [None] * len(images)
    if len(bboxes) != len(images):
        raise ValueError(f"{len(images)} images but {len(bboxes)} boxes")
    boxes = [None if b is None else tuple(float(v) for v in b) for b in bboxes]
    if method == "dlib":
        return [_detect_dlib(img, box) for img, box in zip(images, boxes)]
    return _detect_mesh(images, boxes, refine=refine, passes=passes)


def _detect_dlib(image: np.ndarray, bbox: Bbox | None) -> FaceLandmarks:
    from fercurate.faces.dlib68 import landmarks68

    pts, box, score, failure = landmarks68(image, bbox)
    if failure is not None:
        return _failed("dlib68", 68, bbox, failure, score)
    return FaceLandmarks(pts, "dlib68", box, score, None, None)


def _first_rois(images: Sequence[np.ndarray], boxes: Sequence[Bbox | None]) -> list[tuple[Roi | None, Bbox | None]]:
    from fercurate.faces.detection import detect_faces

    out: list[tuple[Roi | None, Bbox | None]] = []
    for img, box in zip(images, boxes):
        if box is not None:
            out.append((roi_from_bbox(box, BBOX_ROI_SCALE), box))
            continue
        faces = detect_faces(img, "mediapipe")
        if not faces:
            out.append((None, None))
            continue
        face = faces[0]
        out.append((roi_from_bbox(face.bbox, ROI_SCALE, face.eye_angle()), face.bbox))
    return out


def _detect_mesh(
    images: Sequence[np.ndarray], boxes: Sequence[Bbox | None], *, refine: bool, passes: int
) -> list[FaceLandmarks]:
    from fercurate.faces.mesh import INPUT_SIZE, get_landmarker

    model = get_landmarker(attention=refine)
    kind = "mediapipe478" if refine else "mediapipe468"
    n_pts = model.num_points
    firsts = _first_rois(images, boxes)
    rois = [r for r, _ in firsts]
    todo = [i for i, r in enumerate(rois) if r is not None]
    pts3 = np.zeros((len(images), n_pts, 3), np.float32)
    scores = np.zeros(len(images), np.float32)
    for p in range(max(1, passes)):
        if not todo:
            break
        crops = [to_rgb(crop(images[i], rois[i], INPUT_SIZE)) for i in todo]
        out, sc = model.run(crops)
        for k, i in enumerate(todo):
            pts3[i] = to_image_3d(out[k], rois[i], INPUT_SIZE)
            scores[i] = sc[k]
        if p + 1 < passes:
            left, right = _EYE_CORNERS["mediapipe"]
            rois = list(rois)
            for i in todo:
                if scores[i] >= MIN_MESH_SCORE:
                    rois[i] = roi_from_landmarks(pts3[i, :468, :2], left, right, ROI_SCALE)
            todo = [i for i in todo if scores[i] >= MIN_MESH_SCORE]
    results = []
    for i, (roi, box) in enumerate(firsts):
        if roi is None:
            results.append(_failed(kind, n_pts, None, "no face found"))
        elif scores[i] < MIN_MESH_SCORE:
            results.append(_failed(kind, n_pts, box, f"face mesh presence score {scores[i]:.2f} < {MIN_MESH_SCORE}", scores[i]))
        else:
            results.append(FaceLandmarks(pts3[i, :, :2].copy(), kind, box, float(scores[i]), None, pts3[i, :, 2].copy()))
    return results


def to_image_3d(points: np.ndarray, roi: Roi, out_size: int) -> np.ndarray:
    """Crop-space mesh points (x, y, z) -> image space; z is scaled like x and y (rotation-free)."""
    out = np.empty_like(points, dtype=np.float32)
    out[:, :2] = roi.to_image(points[:, :2], out_size)
    out[:, 2] = points[:, 2] * roi.scale_to_image(out_size)
    return out
