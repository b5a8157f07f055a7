"""Warping a template onto a face: thin-plate splines through anchor points, and RGBA compositing.

A template (RGBA image + anchor points) is pulled into the image by the *inverse* spline (image
pixel -> template pixel) evaluated only over the region it lands on, then alpha-composited with
premultiplied colour so edges stay clean at 48 px as well as at 2000 px.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The spline is smooth: it is evaluated on a grid of about this many nodes (nodes at most _MAX_STEP
# pixels apart) and interpolated bilinearly in between (sub-pixel error; evaluating every pixel
# costs n_anchors x pixels logarithms).
_GRID_NODES = 200
_MAX_STEP = 8  # pixels between grid nodes at most, whatever the size


def _kernel(r2: np.ndarray) -> np.ndarray:
    """TPS radial basis U = r^2 log r^2 (with U(0) = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = r2 * np.log(r2)
    out[r2 <= 0] = 0.0
    return out


@dataclass(frozen=True)
class ThinPlateSpline:
    """A 2-D thin-plate spline mapping ``src`` control points onto ``dst`` (exact up to ``reg``)."""

    src: np.ndarray
    weights: np.ndarray  # (n + 3, 2)
    centre: np.ndarray
    scale: float

    @classmethod
    def fit(cls, src: np.ndarray, dst: np.ndarray, reg: float = 1e-6) -> "ThinPlateSpline":
        src = np.asarray(src, dtype=np.float64)
        dst = np.asarray(dst, dtype=np.float64)
        if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 3:
            raise ValueError(f"need matching (n>=3, 2) control points, got {src.shape} and {dst.shape}")
        centre = src.mean(axis=0)
        scale = float(np.abs(src - centre).max()) or 1.0
        s = (src - centre) / scale
        n = len(s)
        k = _kernel(((s[:, None, :] - s[None, :, :]) ** 2).sum(-1)) + reg * np.eye(n)
        p = np.hstack([np.ones((n, 1)), s])
        a = np.zeros((n + 3, n + 3))
        a[:n, :n], a[:n, n:], a[n:, :n] = k, p, p.T
        b = np.zeros((n + 3, 2))
        b[:n] = dst
        try:
            weights = np.linalg.solve(a, b)
        except np.linalg.LinAlgError:  # collinear anchors: the least-squares spline is still usable
            weights = np.linalg.lstsq(a, b, rcond=None)[0]
        return cls(src=s, weights=weights, centre=centre, scale=scale)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        pts = (np.asarray(points, dtype=np.float64).reshape(-1, 2) - self.centre) / self.scale
        n = len(self.src)
        u = _kernel(((pts[:, None, :] - self.src[None, :, :]) ** 2).sum(-1))
        return u @ self.weights[:n] + self.weights[n] + pts @ self.weights[n + 1 :]


def remap_grid(inverse: ThinPlateSpline, x0: int, y0: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps for the output rectangle (x0, y0, w, h): template coordinates per pixel."""
    if w * h <= _GRID_NODES:
        ys, xs = np.mgrid[y0 : y0 + h, x0 : x0 + w]
        out = inverse(np.stack([xs.ravel(), ys.ravel()], axis=1)).astype(np.float32)
        return out[:, 0].reshape(h, w), out[:, 1].reshape(h, w)
    step = min(_MAX_STEP, int(np.ceil(np.sqrt(w * h / _GRID_NODES))))
    gx = np.arange(0, w - 1 + step, step)
    gy = np.arange(0, h - 1 + step, step)
    ys, xs = np.meshgrid(gy + y0, gx + x0, indexing="ij")
    coarse = inverse(np.stack([xs.ravel(), ys.ravel()], axis=1)).astype(np.float32)
    cx = coarse[:, 0].reshape(len(gy), len(gx))
    cy = coarse[:, 1].reshape(len(gy), len(gx))
    fy, fx = np.mgrid[0:h, 0:w].astype(np.float32) / step
    return (
        cv2.remap(cx, fx, fy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
        cv2.remap(cy, fx, fy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
    )


def bounding_rect(points: np.ndarray, shape: tuple[int, ...], margin: float = 2.0) -> tuple[int, int, int, int] | None:
    """Integer rectangle (x0, y0, w, h) around ``points`` clipped to an image of ``shape``; None if empty."""
    h_img, w_img = shape[:2]
    x0 = max(0, int(np.floor(points[:, 0].min() - margin)))
    y0 = max(0, int(np.floor(points[:, 1].min() - margin)))
    x1 = min(w_img, int(np.ceil(points[:, 0].max() + margin)) + 1)
    y1 = min(h_img, int(np.ceil(points[:, 1].max() + margin)) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1 - x0, y1 - y0


def warp_rgba(
    premultiplied: np.ndarray, inverse: ThinPlateSpline, rect: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """A premultiplied template (see :func:`premultiply`) warped into ``rect``: float32 (h, w, 4),
    and the template x coordinate each pixel came from (for shading across the template)."""
    x0, y0, w, h = rect
    mx, my = remap_grid(inverse, x0, y0, w, h)
    layer = cv2.remap(
        premultiplied, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0)
    )
    return layer, mx


def premultiply(rgba: np.ndarray) -> np.ndarray:
    """uint8 RGBA -> float32 0..1 with colour multiplied by alpha (so bilinear sampling keeps edges clean)."""
    src = rgba.astype(np.float32) * np.float32(1 / 255.0)
    src[..., :3] *= src[..., 3:4]
    return src


def composite(image: np.ndarray, colour: np.ndarray, alpha: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
    """Alpha-composite premultiplied float colour (h, w, 3 BGR, 0..1) with coverage ``alpha`` (h, w)
    over a BGR uint8 image, in place: ``out = colour + image * (1 - alpha)``."""
    x0, y0, w, h = rect
    roi = image[y0 : y0 + h, x0 : x0 + w]
    keep = 1.0 - alpha
    out = cv2.multiply(roi.astype(np.float32), cv2.merge([keep, keep, keep]))
    out = cv2.scaleAdd(np.ascontiguousarray(colour, dtype=np.float32), 255.0, out)
    roi[...] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return image


def paste_alpha(full: np.ndarray, layer_alpha: np.ndarray, rect: tuple[int, int, int, int]) -> None:
    """Accumulate a layer's alpha into a full-image coverage map (``a + b - ab``), in place."""
    x0, y0, w, h = rect
    roi = full[y0 : y0 + h, x0 : x0 + w]
    roi += layer_alpha * (1.0 - roi)
