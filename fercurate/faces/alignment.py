"""Face regions and crops: rotated square ROIs, the affine warps in and out of them, aligned face chips.

Every landmark model here looks at a square, possibly rotated, crop around the face. A :class:`Roi`
describes that crop in the original image's pixel coordinates; :func:`crop` warps it to a fixed size
(upscaling tiny faces such as FERPlus' 48x48 on the way) and :meth:`Roi.to_image` maps points found
in the crop back to the original image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

Bbox = tuple[float, float, float, float]  # x, y, w, h in pixels


@dataclass(frozen=True)
class Roi:
    """A square region: centre ``(cx, cy)``, side ``size`` (pixels), ``angle`` in radians.

    ``angle`` is the face's in-plane rotation, clockwise as seen in the image (image y points down):
    the crop is rotated by ``-angle`` so that the face appears upright in it.
    """

    cx: float
    cy: float
    size: float
    angle: float = 0.0

    def matrix(self, out_size: int) -> np.ndarray:
        """2x3 affine matrix mapping image pixels to crop pixels (``out_size`` x ``out_size``)."""
        s = out_size / self.size
        c, n = np.cos(self.angle), np.sin(self.angle)
        # crop = s * R(-angle) @ (p - centre) + out_size / 2
        rot = np.array([[c, n], [-n, c]]) * s
        t = np.array([out_size / 2.0, out_size / 2.0]) - rot @ np.array([self.cx, self.cy])
        return np.hstack([rot, t[:, None]]).astype(np.float64)

    def to_image(self, points: np.ndarray, out_size: int) -> np.ndarray:
        """Map (N,2) crop coordinates back to image coordinates."""
        m = self.matrix(out_size)
        inv = cv2.invertAffineTransform(m)
        pts = np.asarray(points, dtype=np.float64)
        return pts @ inv[:, :2].T + inv[:, 2]

    def scale_to_image(self, out_size: int) -> float:
        """Image pixels per crop pixel."""
        return self.size / out_size

    def bbox(self) -> Bbox:
        """The axis-aligned square (x, y, w, h) of the ROI ignoring its rotation."""
        h = self.size / 2.0
        return (self.cx - h, self.cy - h, self.size, self.size)


def roi_from_bbox(bbox: Bbox, scale: float = 1.5, angle: float = 0.0) -> Roi:
    """Square ROI around a face box, its side ``scale`` times the box's longer side (MediaPipe's rule)."""
    x, y, w, h = (float(v) for v in bbox)
    return Roi(x + w / 2.0, y + h / 2.0, max(w, h) * scale, angle)


def roi_from_landmarks(
    points: np.ndarray, left: int, right: int, scale: float = 1.5, subset: Sequence[int] | None = None
) -> Roi:
    """ROI from landmarks: rotated so the line ``points[left] -> points[right]`` is horizontal.

    ``left``/``right`` are the indices of the landmarks on the image's left and right (e.g. the outer
    eye corners); the box of the (optionally ``subset`` of) points, measured in the rotated frame,
    gives centre and size, as MediaPipe's landmarks-to-ROI step does.
    """
    pts = np.asarray(points, dtype=np.float64)
    if subset is not None:
        pts_box = pts[list(subset)]
    else:
        pts_box = pts
    d = pts[right] - pts[left]
    angle = float(np.arctan2(d[1], d[0]))
    c, n = np.cos(angle), np.sin(angle)
    rot = np.array([[c, n], [-n, c]])  # image -> upright frame
    up = pts_box @ rot.T
    lo, hi = up.min(axis=0), up.max(axis=0)
    centre_up = (lo + hi) / 2.0
    centre = rot.T @ centre_up
    size = float(max(hi - lo)) * scale
    return Roi(float(centre[0]), float(centre[1]), size, angle)


def crop(
    image: np.ndarray,
    roi: Roi,
    out_size: int,
    *,
    interpolation: int = cv2.INTER_LINEAR,
    border: int = cv2.BORDER_CONSTANT,
) -> np.ndarray:
    """Warp the ROI to an ``out_size`` square (upscaling small faces), keeping the channel layout."""
    return cv2.warpAffine(
        image, roi.matrix(out_size), (out_size, out_size), flags=interpolation, borderMode=border
    )


def to_rgb(image: np.ndarray) -> np.ndarray:
    """BGR, BGRA or gray uint8 -> contiguous RGB uint8 (what MediaPipe expects)."""
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return np.ascontiguousarray(cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB))
    if image.shape[2] == 4:
        return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGRA2RGB))
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


def to_gray(image: np.ndarray) -> np.ndarray:
    """Any uint8 image -> single-channel gray."""
    if image.ndim == 2:
        return image
    if image.shape[2] == 1:
        return image[..., 0]
    code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(image, code)


def align_face(
    image: np.ndarray,
    left_eye: Sequence[float],
    right_eye: Sequence[float],
    *,
    size: int = 224,
    eye_distance: float = 0.36,
    eye_height: float = 0.40,
) -> tuple[np.ndarray, np.ndarray]:
    """Similarity-aligned face chip: eyes level, ``eye_distance`` x ``size`` apart, at ``eye_height``.

    ``left_eye``/``right_eye`` are the eye centres on the image's left and right. Returns the chip
    and the 2x3 matrix that maps image pixels to chip pixels (to carry landmarks over).
    """
    le = np.asarray(left_eye, dtype=np.float64)
    re = np.asarray(right_eye, dtype=np.float64)
    d = re - le
    dist = float(np.hypot(*d))
    if dist <= 0:
        raise ValueError("eye centres coincide; cannot align")
    angle = np.arctan2(d[1], d[0])
    s = eye_distance * size / dist
    c, n = np.cos(angle) * s, np.sin(angle) * s
    rot = np.array([[c, n], [-n, c]])
    mid = (le + re) / 2.0
    target = np.array([size / 2.0, eye_height * size])
    m = np.hstack([rot, (target - rot @ mid)[:, None]])
    chip = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return chip, m
