"""The face crop every model input starts from: one function, so training, evaluation and the
occlusion scorer see the same pixels for the same image and box.

* :func:`face_crop` cuts the face box made square about its centre (the whole image when there is
  no box), pads what falls outside the image by repeating the edge pixels, and resizes to ``size``
  (area averaging when shrinking, bilinear when enlarging). Colour or grey in, the same layout out.
* :func:`aligned_crop` is the paper-faithful alternative (RAN aligns faces with dlib before cropping):
  dlib's 5-point landmarks (:func:`dlib5_points`) mapped by the least-squares similarity transform
  onto dlib's own 5-point template (:data:`DLIB5_TEMPLATE`, with dlib's default padding 0.2), so eyes
  and nose land at fixed positions of a ``size`` x ``size`` chip.

The aligned crop also returns its 2x3 image->chip matrix, so landmarks can follow the face.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

Box = tuple[float, float, float, float]  # x, y, w, h in pixels

# dlib's 5-point face template (``get_face_chip_details``, dlib/image_transforms/interpolation.h), in
# fractions of the unpadded face square, in the order of dlib's 5-point predictor: the eye on the
# image's right (outer corner, inner corner), the eye on the image's left (outer, inner), the base of
# the nose.
DLIB5_TEMPLATE_UNPADDED = np.array([
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
])
DLIB5_PADDING = 0.2  # dlib's default chip padding (a fraction of the face square on each side)
DLIB5_TEMPLATE = (DLIB5_TEMPLATE_UNPADDED + DLIB5_PADDING) / (1 + 2 * DLIB5_PADDING)


def square_box(bbox: Box | np.ndarray | None, width: float, height: float) -> tuple[float, float, float]:
    """The square (x, y, side) a face is cut from: the box made square about its centre, or the image."""
    if bbox is None or not np.all(np.isfinite(bbox)) or bbox[2] <= 0 or bbox[3] <= 0:
        x, y, w, h = 0.0, 0.0, float(width), float(height)
    else:
        x, y, w, h = (float(v) for v in bbox)
    side = max(w, h)
    return x + (w - side) / 2, y + (h - side) / 2, side


def _pixel_square(bbox: Box | np.ndarray | None, width: int, height: int) -> tuple[int, int, int]:
    x, y, side = square_box(bbox, width, height)
    return int(round(x)), int(round(y)), max(1, int(round(side)))


def face_crop(image: np.ndarray, bbox: Box | np.ndarray | None, size: int) -> np.ndarray:
    """The face box made square, edge-padded where it leaves the image, resized to ``size`` x ``size``.

    ``image`` is uint8 grey (H, W) or colour (H, W, C); the crop keeps its layout.
    """
    h, w = image.shape[:2]
    x0, y0, s = _pixel_square(bbox, w, h)
    pad = max(0, -x0, -y0, x0 + s - w, y0 + s - h)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0 = x0 + pad, y0 + pad
    face = image[y0 : y0 + s, x0 : x0 + s]
    if s != size:
        face = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA if s > size else cv2.INTER_LINEAR)
    return np.ascontiguousarray(face)


# --- paper-faithful alignment -----------------------------------------------------------------------


@lru_cache(maxsize=None)
def _dlib5():  # noqa: ANN202 - a dlib shape predictor
    import dlib

    from fercurate.faces.dlib68 import model_path

    return dlib.shape_predictor(str(model_path("shape_predictor_5_face_landmarks.dat")))


def dlib5_points(image: np.ndarray, bbox: Box | np.ndarray | None) -> np.ndarray:
    """dlib's 5 landmarks (5, 2) in image pixels for the face in ``bbox`` (the whole image when None).

    dlib's predictor regresses the points from the box it is given (it never fails); it expects a
    detector-style box, which a dataset face box is close to.
    """
    import dlib

    h, w = image.shape[:2]
    if bbox is None or not np.all(np.isfinite(bbox)) or bbox[2] <= 0 or bbox[3] <= 0:
        x, y, bw, bh = 0.0, 0.0, float(w), float(h)
    else:
        x, y, bw, bh = (float(v) for v in bbox)
    if image.ndim == 3 and image.shape[2] == 3:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.ndim == 3:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    else:
        rgb = image
    rect = dlib.rectangle(int(round(x)), int(round(y)), int(round(x + bw - 1)), int(round(y + bh - 1)))
    shape = _dlib5()(np.ascontiguousarray(rgb), rect)
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)


def alignment_matrix(points: np.ndarray, size: int, template: np.ndarray = DLIB5_TEMPLATE) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift) taking ``points`` to ``template * size``."""
    from skimage.transform import SimilarityTransform

    src = np.asarray(points, dtype=np.float64)
    dst = np.asarray(template, dtype=np.float64) * size
    if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26 (estimate() is deprecated there)
        tform = SimilarityTransform.from_estimate(src, dst)
        ok = bool(tform)
    else:
        tform = SimilarityTransform()
        ok = tform.estimate(src, dst)
    if not ok or not np.all(np.isfinite(tform.params)):
        raise ValueError("degenerate landmarks: no similarity transform onto the template")
    return tform.params[:2].copy()


def warp_face(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp ``image`` by the 2x3 image->chip ``matrix`` into a ``size`` square (edge-padded).

    When the chip is much smaller than the face, the image is first shrunk by area averaging so the
    bilinear warp does not alias (what :func:`face_crop` gets from ``INTER_AREA``).
    """
    m = np.asarray(matrix, dtype=np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if scale < 0.5:
        h, w = image.shape[:2]
        nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        fx, fy = w / nw, h / nh  # shrunk pixel centre q -> original (q + 0.5) * f - 0.5
        m = m @ np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5], [0.0, 0.0, 1.0]])
    out = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(out)


def aligned_crop(image: np.ndarray, bbox: Box | np.ndarray | None, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The face aligned with dlib's 5 points onto :data:`DLIB5_TEMPLATE`: (chip, 2x3 image->chip matrix)."""
    matrix = alignment_matrix(dlib5_points(image, bbox), size)
    return warp_face(image, matrix, size), matrix
