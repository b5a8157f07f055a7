"""Outlines on a face from its 68 landmarks: the face frame they are drawn in, the mask outline, the face
region, and which points a polygon covers.

The mask outline is built from landmarks, not from a box: its top edge runs from the cheek (jaw
point 1) under the eye, over the nose bridge and back down under the other eye to jaw point 15; the
rest follows the jaw contour pushed slightly outward, under the chin. Two checks keep it honest
whatever the head pose: the top edge is pushed below every eye landmark, and the outline is inflated
until the nose, nostrils, mouth and chin lie inside it (at 45 deg yaw the nose tip sticks out past
the far cheek's contour points).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fercurate.synth import shapes as S

# Landmarks a mask must cover (the benchmark's coverage set) and must leave free.
COVER_POINTS = np.concatenate([[S.NOSE_TIP], S.MOUTH, [S.CHIN]])
EYE_POINTS = S.EYES
_CENTRE_POINTS = np.concatenate([S.NOSE_BRIDGE, S.MOUTH_OUTER])
_MUST_COVER = np.concatenate([[S.NOSE_TIP], S.NOSTRILS, S.MOUTH_OUTER, [S.CHIN]])
_BROWS_RIGHT_TO_LEFT = np.concatenate([S.BROW_LEFT[::-1], S.BROW_RIGHT[::-1]])
# Positions in :func:`mask_outline` of the six anchors a..f of a user template (MaskTheFace format):
# a/c top corners on the cheeks, b the nose bridge, d/f the jaw at the lower corners, e the chin.
TEMPLATE_ANCHORS: dict[str, int] = {"a": 0, "b": 2, "c": 4, "d": 15, "e": 11, "f": 7}


@dataclass(frozen=True)
class FaceFrame:
    """Where a face is and how it is turned: origin at the nose bridge, unit ``right``/``down`` axes."""

    points: np.ndarray
    right: np.ndarray
    down: np.ndarray
    length: float  # nose bridge (27) to chin (8), pixels
    yaw: float  # rough signed yaw in degrees from landmark asymmetry (+: nose towards image right)

    @classmethod
    def from_points(cls, points: np.ndarray) -> "FaceFrame":
        pts = S.as_points(points)
        left_eye, right_eye = S.eye_centres(pts)
        axis = right_eye - left_eye
        norm = float(np.hypot(*axis))
        right = axis / norm if norm > 1e-6 else np.array([1.0, 0.0])
        down = np.array([-right[1], right[0]])
        length = float(np.hypot(*(pts[S.CHIN] - pts[27])))
        if length < 1e-6:
            length = max(norm * 1.7, 1.0)
        # nose tip between the eye centres: t = 0.5 + depth * tan(yaw) for a nose tip ``depth``
        # (in inter-ocular units) in front of the eyes; 0.55 is a typical adult face.
        t = float((pts[S.NOSE_TIP] - left_eye) @ right) / norm if norm > 1e-6 else 0.5
        yaw = float(np.degrees(np.arctan((t - 0.5) / 0.55)))
        return cls(points=pts, right=right, down=down, length=length, yaw=yaw)

    def to_frame(self, p: np.ndarray) -> np.ndarray:
        """Image points -> (sideways, downward) coordinates relative to the nose bridge."""
        d = np.asarray(p, dtype=np.float64) - self.points[27]
        return np.stack([d @ self.right, d @ self.down], axis=-1)

    def from_frame(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        return self.points[27] + q[..., :1] * self.right + q[..., 1:2] * self.down


@dataclass(frozen=True)
class MaskShape:
    """Knobs of the mask outline, in units of the face length (jittered per sample)."""

    # Chosen on FERPlus validation against dlib's landmarks of masks placed by the mesh (the test
    # split is the benchmark's): the earlier 0.06 / 0.10 / 0.38 / 0.16 left dlib's chin outside on 1
    # face in 10 and its lower eyelids inside on 1 in 25.
    margin: float = 0.07  # how far the outline sits outside the jaw contour
    chin_drop: float = 0.16  # extra room under the chin (cloth hangs below it)
    bridge: float = 0.45  # top edge on the nose bridge, 0 = landmark 27, 1 = nose tip
    under_eye: float = 0.20  # top edge below the lower eyelids

    def jittered(self, rng: np.random.Generator) -> "MaskShape":
        return MaskShape(
            margin=self.margin * rng.uniform(0.8, 1.25),
            chin_drop=self.chin_drop * rng.uniform(0.8, 1.3),
            bridge=self.bridge + rng.uniform(-0.06, 0.06),
            under_eye=self.under_eye * rng.uniform(0.85, 1.2),
        )


def _jaw_normals(pts: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Unit outward normals of the jaw contour at points 0..16."""
    jaw = pts[:17]
    tangent = np.empty_like(jaw)
    tangent[1:-1] = jaw[2:] - jaw[:-2]
    tangent[0], tangent[-1] = jaw[1] - jaw[0], jaw[-1] - jaw[-2]
    normal = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
    normal /= np.maximum(np.hypot(normal[:, 0], normal[:, 1]), 1e-9)[:, None]
    flip = ((jaw - centre) * normal).sum(axis=1) < 0
    normal[flip] *= -1
    return normal


def mask_outline(
    points: np.ndarray, shape: MaskShape | None = None, frame: FaceFrame | None = None, *, checks: bool = True
) -> np.ndarray:
    """The 18 outline anchors of a face mask, clockwise from jaw point 1.

    Order: jaw1', under-left-eye, nose bridge, under-right-eye, jaw15', jaw14' ... jaw2' (primes:
    pushed outward; jaw point k is at index 19 - k). :data:`TEMPLATE_ANCHORS` names six of them.
    """
    shape = shape or MaskShape()
    frame = frame or FaceFrame.from_points(points)
    pts = frame.points
    m = shape.margin * frame.length
    centre = pts[_CENTRE_POINTS].mean(axis=0)
    normals = _jaw_normals(pts, centre)
    jaw = pts[S.JAW] + m * normals
    jaw[S.CHIN] += shape.chin_drop * frame.length * frame.down
    nose_len = float(np.hypot(*(pts[S.NOSE_TIP] - pts[27]))) or 0.3 * frame.length
    bridge = pts[27] + shape.bridge * (pts[S.NOSE_TIP] - pts[27])
    drop = shape.under_eye * frame.length
    ul = pts[[40, 41]].mean(axis=0) + drop * frame.down
    ur = pts[[46, 47]].mean(axis=0) + drop * frame.down
    outline = np.vstack([jaw[1], ul, bridge, ur, jaw[15], jaw[14:1:-1]])
    if not checks:  # the mean face needs no repair (procedural templates are drawn on it)
        return outline
    outline = _below_eyes(outline, frame, clearance=0.06 * frame.length, nose_len=nose_len)
    return _inflate(outline, frame, margin=0.5 * m)


def _below_eyes(outline: np.ndarray, frame: FaceFrame, clearance: float, nose_len: float) -> np.ndarray:
    """Lower the top edge (anchors 1..3; the cheek corners 0 and 4 stay) below every eye landmark."""
    q = frame.to_frame(outline)
    eyes = frame.to_frame(frame.points[EYE_POINTS])
    ex, ey = eyes[:, 0], eyes[:, 1] + clearance
    rows = np.arange(4)
    for _ in range(6):
        x0, x1, y0, y1 = q[0:4, 0], q[1:5, 0], q[0:4, 1], q[1:5, 1]  # the four top-edge segments
        dx = np.where(np.abs(x1 - x0) > 1e-9, x1 - x0, np.inf)
        t = (ex[None, :] - x0[:, None]) / dx[:, None]
        within = (t >= 0) & (t <= 1)
        deficit = np.where(within, ey[None, :] - (y0[:, None] + t * (y1 - y0)[:, None]), -np.inf)
        worst = deficit.argmax(axis=1)
        need = deficit[rows, worst]
        if need.max() <= 1e-6:
            break
        for seg in np.flatnonzero(need > 1e-6):
            tk = float(t[seg, worst[seg]])
            # a corner end cannot move: the other end takes the whole correction
            weights = {seg: 1 - tk, seg + 1: tk}
            movable = [i for i in weights if i not in (0, 4)]
            total = max(sum(weights[i] for i in movable), 0.25)
            for i in movable:
                q[i, 1] += need[seg] / total
        q[2, 1] = min(q[2, 1], 0.6 * nose_len)  # the top edge never slides below 60% of the nose
    return frame.from_frame(q)


def _inflate(outline: np.ndarray, frame: FaceFrame, margin: float) -> np.ndarray:
    """Push outline vertices outward (radially from the mouth) until the lower face is inside."""
    pts = frame.points
    centre = pts[S.MOUTH_OUTER].mean(axis=0)
    must = pts[_MUST_COVER]
    out = outline.copy()
    for _ in range(3):
        contour = out.astype(np.float32).reshape(-1, 1, 2)
        dist = np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), True) for x, y in must])
        if dist.min() >= margin:
            break
        vec = out - centre
        ang = np.arctan2(vec[:, 1], vec[:, 0])
        rad = np.hypot(vec[:, 0], vec[:, 1])
        for p, dp in zip(must, dist):
            if dp >= margin:
                continue
            need = margin - dp
            pa = np.arctan2(p[1] - centre[1], p[0] - centre[0])
            delta = np.abs((ang - pa + np.pi) % (2 * np.pi) - np.pi)
            weight = np.clip(1 - delta / np.radians(50), 0, 1)
            rad = rad + 1.5 * need * weight
        out = centre + np.stack([np.cos(ang), np.sin(ang)], axis=1) * rad[:, None]
    return out


def face_region(points: np.ndarray, frame: FaceFrame | None = None) -> np.ndarray:
    """Polygon of the whole face: the jaw contour closed over a forehead above the brows."""
    frame = frame or FaceFrame.from_points(points)
    pts = frame.points
    brows = pts[_BROWS_RIGHT_TO_LEFT]
    lift = 0.22 * frame.length * frame.down
    return np.vstack([pts[S.JAW], brows - lift])


def polygon_mask(polygon: np.ndarray, shape: tuple[int, ...], supersample: int = 4) -> np.ndarray:
    """Anti-aliased coverage (float32 0..1, image size) of a polygon."""
    h, w = shape[:2]
    img = np.zeros((h * supersample, w * supersample), np.uint8)
    pts = np.round((polygon + 0.5) * supersample - 0.5).astype(np.int32)
    cv2.fillPoly(img, [pts], 255, lineType=cv2.LINE_8)
    small = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


def sample(alpha: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear samples of a coverage map at sub-pixel points (0 outside the image)."""
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 1, 2)
    return cv2.remap(
        alpha, pts[..., 0], pts[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    ).ravel()


def inside(polygon: np.ndarray, points: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Which points lie inside ``polygon`` by at least ``margin`` pixels (geometric, unclipped)."""
    if margin == 0.0:
        return _crossing_inside(np.asarray(polygon, dtype=np.float64), np.asarray(points, dtype=np.float64))
    contour = np.asarray(polygon, dtype=np.float32).reshape(-1, 1, 2)
    return np.array(
        [cv2.pointPolygonTest(contour, (float(x), float(y)), True) >= margin for x, y in np.asarray(points)],
        dtype=bool,
    )


def _crossing_inside(polygon: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Even-odd rule, all points against all edges at once (points on an edge count as inside)."""
    a = polygon[:, None, :]  # (E, 1, 2) edge starts
    b = np.roll(polygon, -1, axis=0)[:, None, :]  # edge ends
    p = points[None, :, :]  # (1, P, 2)
    ax, ay, bx, by, px, py = a[..., 0], a[..., 1], b[..., 0], b[..., 1], p[..., 0], p[..., 1]
    straddles = (ay > py) != (by > py)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = ax + (py - ay) * (bx - ax) / (by - ay)
    odd = (straddles & (px < x_cross)).sum(axis=0) % 2 == 1
    # on an edge: collinear with it and within its bounding box (pointPolygonTest's 0 counts as inside)
    cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
    scale = np.hypot(bx - ax, by - ay)
    on_line = np.abs(cross) <= 1e-6 * np.maximum(scale, 1e-12) * np.maximum(scale, 1.0)
    within = (np.minimum(ax, bx) - 1e-9 <= px) & (px <= np.maximum(ax, bx) + 1e-9)
    within &= (np.minimum(ay, by) - 1e-9 <= py) & (py <= np.maximum(ay, by) + 1e-9)
    return odd | (on_line & within).any(axis=0)


def coverage(polygon: np.ndarray, points: np.ndarray) -> tuple[bool, bool, float]:
    """(nose tip + mouth + chin all inside, no eye point inside, share of the cover points inside).

    Geometric test on the mask's outline, so landmarks just outside the picture (the chin of a tight
    48 px crop) still count: the mask outline runs past the frame there.
    """
    pts = S.as_points(points)
    cover = inside(polygon, pts[COVER_POINTS])
    eyes = inside(polygon, pts[EYE_POINTS])
    return bool(cover.all()), bool(not eyes.any()), float(cover.mean())
