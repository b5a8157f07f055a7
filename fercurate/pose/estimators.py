"""Head-pose estimators behind one interface: ``estimator.estimate(images, bboxes) -> PoseBatch``.

* ``mediapipe`` (default): the MediaPipe face mesh (468 points) on a crop around the face, fitted to
  the packaged mean 3D mesh (:mod:`fercurate.pose.model3d`) by weighted 3D similarity Procrustes on
  the mesh's x, y and depth: closed form, batched, every vertex used with a rigidity weight.
* ``mediapipe-pnp``: the same landmarks, 2D only, fitted by robust perspective-n-point (SQPnP +
  Huber-reweighted Levenberg-Marquardt) to the same mean mesh.
* ``dlib``: dlib's 68 points fitted by robust PnP to the packaged 68-point model (derived from the
  mean mesh).
* ``dlib-6point``: the generic 6-point PnP model found in tutorials (nose tip, chin, eye and mouth
  corners), kept as the baseline the others are measured against.

Angles follow the AFLW2000-3D / 300W-LP convention (see :mod:`fercurate.pose.geometry`): yaw > 0
when the face turns toward the image's left edge, pitch > 0 chin up, roll > 0 clockwise in the image.
The camera is weak-perspective-like (principal point at the face, focal length 8x the face size), as
in those benchmarks' 3DMM labels, so a face's position in the frame does not change its angles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fercurate.faces.alignment import Bbox, Roi, crop, roi_from_bbox, roi_from_landmarks, to_rgb
from fercurate.pose.geometry import euler_from_matrix, procrustes, solve_pnp
from fercurate.pose.model3d import FaceModel3D, load_model

FOCAL_PER_FACE = 8.0
# Presence probability below which the mesh is said to have found no face.
MIN_PRESENCE = 0.5
# Faces rolled more than this are re-cropped level and run again (the mesh is trained on level crops);
# the mesh under-reads the tilt of a rotated crop, so a crop still off by RECROP_AGAIN is redone once more.
RECROP_ROLL = 8.0
RECROP_AGAIN = 3.0
MAX_RECROPS = 2

# The generic 6-point model (millimetres; x right, y up, z toward the camera in its source) in our head
# frame (y down, z into the head): nose tip, chin, eye outer corners, mouth corners.
GENERIC_6POINT = np.array(
    [[0.0, 0.0, 0.0], [0.0, 330.0, 65.0], [-225.0, -170.0, 135.0], [225.0, -170.0, 135.0],
     [-150.0, 150.0, 125.0], [150.0, 150.0, 125.0]]
)
GENERIC_6POINT_IBUG = (30, 8, 36, 45, 48, 54)


@dataclass
class PoseBatch:
    """Per-face results: angles in degrees (NaN on failure), confidence in [0, 1], failure reasons."""

    yaw: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray
    confidence: np.ndarray
    failure: list[str | None]
    method: str

    @classmethod
    def empty(cls, n: int, method: str) -> "PoseBatch":
        nan = np.full(n, np.nan, np.float32)
        return cls(nan.copy(), nan.copy(), nan.copy(), np.zeros(n, np.float32), [None] * n, method)

    def set(self, i: int, ypr: np.ndarray, confidence: float) -> None:
        self.yaw[i], self.pitch[i], self.roll[i] = ypr
        self.confidence[i] = confidence

    def fail(self, i: int, reason: str) -> None:
        self.yaw[i] = self.pitch[i] = self.roll[i] = np.nan
        self.confidence[i] = 0.0
        self.failure[i] = reason


class PoseEstimator:
    """Interface: ``estimate(images, bboxes)`` for BGR/gray uint8 images; ``None`` images fail."""

    name = "base"

    def estimate(self, images: Sequence[np.ndarray | None], bboxes: Sequence[Bbox | None] | None = None) -> PoseBatch:
        raise NotImplementedError

    def estimate_one(self, image: np.ndarray, bbox: Bbox | None = None) -> tuple[float, float, float]:
        """(yaw, pitch, roll) of one face; NaNs if none was found."""
        b = self.estimate([image], [bbox])
        return float(b.yaw[0]), float(b.pitch[0]), float(b.roll[0])


def _face_box(image: np.ndarray, bbox: Bbox | None) -> tuple[Bbox | None, float]:
    """The face box to use: given, else detected, else the whole image for small face crops."""
    if bbox is not None:
        return tuple(float(v) for v in bbox), 0.0
    from fercurate.faces.detection import detect_faces

    faces = detect_faces(image, "mediapipe")
    if faces:
        return faces[0].bbox, faces[0].eye_angle()
    h, w = image.shape[:2]
    if max(h, w) <= 128:  # a face crop too small for the detectors (FERPlus-like): the whole image
        return (0.0, 0.0, float(w), float(h)), 0.0
    return None, 0.0


def confidence_from(presence: np.ndarray, residual: np.ndarray, scale: float) -> np.ndarray:
    """Presence probability x a fit-quality factor that halves when the RMS residual reaches ``scale``."""
    return (presence * np.exp(-np.log(2.0) * (residual / scale) ** 2)).astype(np.float32)


class MeshPose(PoseEstimator):
    """Face mesh + mean 3D mesh, solved by 3D Procrustes (``solver="procrustes"``) or robust PnP."""

    def __init__(self, solver: str = "procrustes", recrop: bool = True) -> None:
        if solver not in ("procrustes", "pnp"):
            raise ValueError(f"unknown solver {solver!r}")
        self.solver = solver
        self.recrop = recrop
        self.name = "mediapipe" if solver == "procrustes" else "mediapipe-pnp"
        self.model: FaceModel3D = load_model("mediapipe468")
        self.zscale = _zscale()

    def landmarks(
        self, images: Sequence[np.ndarray | None], bboxes: Sequence[Bbox | None]
    ) -> tuple[np.ndarray, np.ndarray, list[str | None], list[Roi | None]]:
        """Mesh points (B, 468, 3) in image pixels (depth scaled like x), presence (B,), failures, ROIs."""
        from fercurate.faces.landmarks import BBOX_ROI_SCALE, ROI_SCALE, to_image_3d
        from fercurate.faces.mesh import INPUT_SIZE, get_landmarker

        n = len(images)
        pts = np.zeros((n, 468, 3), np.float32)
        presence = np.zeros(n, np.float32)
        failure: list[str | None] = [None] * n
        rois: list[Roi | None] = [None] * n
        sources: list[np.ndarray | None] = [None] * n
        for i, (img, box) in enumerate(zip(images, bboxes)):
            if img is None:
                failure[i] = "image unreadable"
                continue
            face, angle = _face_box(img, box)
            if face is None:
                failure[i] = "no face found"
                continue
            if face[2] <= 1 or face[3] <= 1:
                failure[i] = "empty face box"
                continue
            given = box is not None
            rois[i] = roi_from_bbox(face, BBOX_ROI_SCALE if given else ROI_SCALE, angle)
            sources[i] = img
        todo = [i for i in range(n) if rois[i] is not None]
        model = get_landmarker(attention=False)
        for round_ in range(1 + (MAX_RECROPS if self.recrop else 0)):
            if not todo:
                break
            # Crop first, then convert the small crop to RGB (cheaper than converting the whole image).
            out, sc = model.run([to_rgb(crop(sources[i], rois[i], INPUT_SIZE)) for i in todo])
            for k, i in enumerate(todo):
                pts[i] = to_image_3d(out[k], rois[i], INPUT_SIZE)
                presence[i] = sc[k]
            if self.recrop:
                again = []
                limit = RECROP_ROLL if round_ == 0 else RECROP_AGAIN
                for i in todo:
                    d = pts[i, 263, :2] - pts[i, 33, :2]
                    tilt = np.degrees(np.arctan2(d[1], d[0])) - np.degrees(rois[i].angle)
                    if presence[i] >= MIN_PRESENCE and abs(tilt) > limit:
                        rois[i] = roi_from_landmarks(pts[i, :, :2], 33, 263, ROI_SCALE)
                        again.append(i)
                todo = again
        for i in range(n):
            if failure[i] is None and presence[i] < MIN_PRESENCE:
                failure[i] = "face mesh found no face"
        pts[..., 2] *= self.zscale
        return pts, presence, failure, rois

    def estimate(self, images: Sequence[np.ndarray | None], bboxes: Sequence[Bbox | None] | None = None) -> PoseBatch:
        n = len(images)
        bboxes = list(bboxes) if bboxes is not None else [None] * n
        out = PoseBatch.empty(n, self.name)
        pts, presence, failure, rois = self.landmarks(images, bboxes)
        ok = np.array([f is None for f in failure], dtype=bool)
        for i in np.where(~ok)[0]:
            out.fail(int(i), failure[i])
        idx = np.where(ok)[0]
        if len(idx) == 0:
            return out
        if self.solver == "procrustes":
            rot, scale, _, resid = procrustes(self.model.points, pts[idx].astype(np.float64), self.model.weights)
            ypr = euler_from_matrix(rot)
            rel = resid / scale  # in inter-ocular units of the model
        else:
            ypr = np.zeros((len(idx), 3))
            rel = np.zeros(len(idx))
            for k, i in enumerate(idx):
                p2 = pts[i, :, :2].astype(np.float64)
                size = rois[i].size
                rot, _, rms = solve_pnp(
                    self.model.points, p2, FOCAL_PER_FACE * size, (rois[i].cx, rois[i].cy), weights=self.model.weights
                )
                ypr[k] = euler_from_matrix(rot)
                rel[k] = rms / (np.linalg.norm(p2[263] - p2[33]) + 1e-9)
        conf = confidence_from(presence[idx], rel, 0.08)
        for k, i in enumerate(idx):
            out.set(int(i), ypr[k], float(conf[k]))
        return out


def _zscale() -> float:
    from fercurate.pose.model3d import MODEL_FILE

    return float(np.load(MODEL_FILE)["zscale"])


class DlibPose(PoseEstimator):
    """dlib 68 points + robust PnP on the packaged 68-point model (or the generic 6-point model)."""

    def __init__(self, six_point: bool = False) -> None:
        self.six_point = six_point
        self.name = "dlib-6point" if six_point else "dlib"
        self.model = load_model("dlib68")

    def estimate(self, images: Sequence[np.ndarray | None], bboxes: Sequence[Bbox | None] | None = None) -> PoseBatch:
        from fercurate.faces.dlib68 import landmarks68

        n = len(images)
        bboxes = list(bboxes) if bboxes is not None else [None] * n
        out = PoseBatch.empty(n, self.name)
        for i, (img, box) in enumerate(zip(images, bboxes)):
            if img is None:
                out.fail(i, "image unreadable")
                continue
            if box is None:
                h, w = img.shape[:2]
                box = (0.0, 0.0, float(w), float(h)) if max(h, w) <= 128 else None
            pts, used, score, failure = landmarks68(img, box)
            if failure is not None:
                out.fail(i, failure)
                continue
            ypr, rel = self.fit(pts.astype(np.float64), used)
            out.set(i, ypr, float(confidence_from(np.array([score]), np.array([rel]), 0.08)[0]))
        return out

    def fit(self, pts: np.ndarray, box: Bbox) -> tuple[np.ndarray, float]:
        """(yaw, pitch, roll) and the relative RMS reprojection error for 68 image points."""
        size = max(box[2], box[3])
        centre = (box[0] + box[2] / 2.0, box[1] + box[3] / 2.0)
        if self.six_point:
            rot, _, rms = solve_pnp(GENERIC_6POINT, pts[list(GENERIC_6POINT_IBUG)], FOCAL_PER_FACE * size, centre, iterations=0)
        else:
            rot, _, rms = solve_pnp(self.model.points, pts, FOCAL_PER_FACE * size, centre, weights=self.model.weights)
        return euler_from_matrix(rot), rms / (np.linalg.norm(pts[45] - pts[36]) + 1e-9)


def get_estimator(method: str) -> PoseEstimator:
    """An estimator by name: mediapipe (default), mediapipe-pnp, dlib, dlib-6point."""
    if method == "mediapipe":
        return MeshPose("procrustes")
    if method == "mediapipe-pnp":
        return MeshPose("pnp")
    if method == "dlib":
        return DlibPose()
    if method == "dlib-6point":
        return DlibPose(six_point=True)
    raise ValueError(f"unknown pose method {method!r} (use one of {', '.join(METHODS)})")


METHODS: tuple[str, ...] = ("mediapipe", "mediapipe-pnp", "dlib", "dlib-6point")
