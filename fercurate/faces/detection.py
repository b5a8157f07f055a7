"""Face detection for images without a dataset face box: MediaPipe BlazeFace, dlib HOG as fallback.

BlazeFace is MediaPipe's face detector (short- and full-range models, Apache-2.0, shipped in
``fercurate/faces/models/``) run on LiteRT with MediaPipe's own anchors, decoding and weighted
non-maximum suppression (:class:`BlazeFace`); dlib's HOG detector is built into dlib. Small images
are upscaled before detection, since both detectors miss faces under ~40 px.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from fercurate.faces.alignment import Bbox, to_gray, to_rgb

# Detect on images at least this large (pixels, shorter side); smaller ones are upscaled first.
MIN_DETECT_SIDE = 160


@dataclass(frozen=True)
class FaceBox:
    """A detected face: box (x, y, w, h) in image pixels, a score in [0, 1], optional keypoints.

    ``keypoints`` (MediaPipe only) are the detector's six points in image pixels, in its order:
    eye on the image's left, eye on the image's right, nose tip, mouth centre, the two ear tragions.
    """

    bbox: Bbox
    score: float
    method: str
    keypoints: np.ndarray | None = field(default=None, compare=False)

    @property
    def area(self) -> float:
        return float(self.bbox[2] * self.bbox[3])

    def eye_angle(self) -> float:
        """In-plane rotation (radians, clockwise in the image) from the detector's eye keypoints, 0 if none."""
        if self.keypoints is None:
            return 0.0
        d = self.keypoints[1] - self.keypoints[0]
        return float(np.arctan2(d[1], d[0]))


@dataclass(frozen=True)
class BlazeFaceConfig:
    """One BlazeFace model as MediaPipe's face_detection graphs configure it (anchors and decoding)."""

    model: str
    size: int  # square input, pixels
    strides: tuple[int, ...]  # one per SSD layer; equal consecutive strides share a grid
    interpolated: bool  # a second anchor per layer (MediaPipe's interpolated_scale_aspect_ratio 1.0)


SHORT_RANGE = BlazeFaceConfig("face_detection_short_range.tflite", 128, (8, 16, 16, 16), True)
FULL_RANGE = BlazeFaceConfig("face_detection_full_range_sparse.tflite", 192, (4,), False)
# Score threshold and NMS overlap of MediaPipe's face_detection graphs (the legacy solution's
# min_detection_confidence=0.3 never reached its decoder: on 192 test images it returned no face under 0.5).
MIN_SCORE = 0.5
NMS_IOU = 0.3


def ssd_anchors(config: BlazeFaceConfig) -> np.ndarray:
    """Anchor centres (A, 2) in 0..1 input coordinates, in the model's output order (fixed size 1x1)."""
    out = []
    i = 0
    strides = config.strides
    while i < len(strides):
        j = i
        per_cell = 0
        while j < len(strides) and strides[j] == strides[i]:
            per_cell += 2 if config.interpolated else 1
            j += 1
        n = int(np.ceil(config.size / strides[i]))
        ys, xs = np.mgrid[0:n, 0:n]
        centres = np.stack([(xs.ravel() + 0.5) / n, (ys.ravel() + 0.5) / n], axis=1)
        out.append(np.repeat(centres, per_cell, axis=0))
        i = j
    return np.concatenate(out).astype(np.float32)


class BlazeFace:
    """MediaPipe's BlazeFace detector on LiteRT, with MediaPipe's pre- and post-processing.

    The image is letterboxed into the square input (aspect kept, zero padding, values -1..1); raw
    outputs are decoded against SSD anchors (box centre/size and six keypoints, scaled by the input
    size), scored by a sigmoid of the clipped logit, kept at ``MIN_SCORE`` and merged by MediaPipe's
    weighted non-maximum suppression; boxes and keypoints are returned in image pixels.
    """

    def __init__(self, config: BlazeFaceConfig) -> None:
        from fercurate.faces.mesh import TfliteModel

        self.config = config
        self.model = TfliteModel(config.model)
        (self._input,) = self.model.inputs
        outputs = self.model.interpreter.get_output_details()
        sizes = {d["name"]: int(np.prod(d["shape"])) for d in outputs}
        self.anchors = ssd_anchors(config)
        n = len(self.anchors)
        self._boxes = next(k for k, v in sizes.items() if v == n * 16)
        self._scores = next(k for k, v in sizes.items() if v == n)

    def __call__(self, rgb: np.ndarray) -> list[tuple[np.ndarray, float, np.ndarray]]:
        """(box x0, y0, x1, y1 in pixels; score; keypoints (6, 2) in pixels) for each face found."""
        h, w = rgb.shape[:2]
        size = self.config.size
        side = max(h, w)
        s = size / side
        # the image centred in a side x side square, scaled to the input (bilinear, zero border)
        m = np.array([[s, 0.0, (size - w * s) / 2.0], [0.0, s, (size - h * s) / 2.0]])
        tensor = cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        out = self.model(**{self._input: tensor.astype(np.float32) / 127.5 - 1.0})
        raw = out[self._boxes].reshape(-1, 16)
        logits = np.clip(out[self._scores].reshape(-1).astype(np.float64), -100.0, 100.0)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = np.where(scores >= MIN_SCORE)[0]
        if len(keep) == 0:
            return []
        anchors = self.anchors[keep]
        raw = raw[keep] / size
        # input 0..1 -> 0..1 of the image's width and height (letterbox undone)
        offset = np.array([(size - w * s) / 2.0, (size - h * s) / 2.0]) / size
        to_rel = side / np.array([w, h], dtype=np.float64)
        centre = (raw[:, :2] + anchors - offset) * to_rel
        half = raw[:, 2:4] * to_rel / 2.0
        boxes = np.concatenate([centre - half, centre + half], axis=1)  # x0, y0, x1, y1
        kps = (raw[:, 4:].reshape(-1, 6, 2) + anchors[:, None, :] - offset) * to_rel
        found = weighted_nms(boxes, scores[keep], kps, NMS_IOU)
        wh = np.array([w, h], dtype=np.float64)
        return [((b.reshape(2, 2) * wh).ravel(), sc, k * wh) for b, sc, k in found]


def _iou_matrix(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box with many."""
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = iw * ih
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, threshold: float
) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """MediaPipe's WEIGHTED non-maximum suppression: each cluster (IoU > threshold with its best box)
    becomes one detection with the best score and the score-weighted mean box and keypoints."""
    order = np.argsort(-scores, kind="stable")
    out = []
    while len(order):
        best = order[0]
        sim = _iou_matrix(boxes[best], boxes[order])
        cluster, order = order[sim > threshold], order[sim <= threshold]
        if len(cluster) == 0:  # a degenerate (empty) best box matches nothing, not even itself
            cluster, order = np.array([best]), order[order != best]
        wts = scores[cluster][:, None]
        box = (boxes[cluster] * wts).sum(0) / wts.sum()
        kps = (keypoints[cluster] * wts[:, :, None]).sum(0) / wts.sum()
        out.append((box, float(scores[best]), kps))
    return out


@lru_cache(maxsize=None)
def _blazeface(full_range: bool) -> BlazeFace:
    return BlazeFace(FULL_RANGE if full_range else SHORT_RANGE)


@lru_cache(maxsize=None)
def _dlib_detector():  # noqa: ANN202 - dlib object
    import dlib

    return dlib.get_frontal_face_detector()


def _upscale(image: np.ndarray) -> tuple[np.ndarray, float]:
    h, w = image.shape[:2]
    side = min(h, w)
    if side >= MIN_DETECT_SIDE:
        return image, 1.0
    f = MIN_DETECT_SIDE / side
    return cv2.resize(image, (round(w * f), round(h * f)), interpolation=cv2.INTER_CUBIC), f


# A short-range detection at least this confident is kept without also running the full-range model.
CONFIDENT = 0.7


def detect_mediapipe(image: np.ndarray) -> list[FaceBox]:
    """BlazeFace on a BGR/gray image: the short-range model, and the full-range one (pooled, overlaps
    merged by score) only when the short-range model found no confident face. The full-range model
    costs 2.5x the short-range one (7.5 vs 3.0 ms CPU on a 256-px image) and dataset faces are close-ups.
    """
    img, f = _upscale(image)
    rgb = to_rgb(img)
    found: list[FaceBox] = []
    for full_range in (False, True):
        if full_range and any(face.score >= CONFIDENT for face in found):
            break
        for (x0, y0, x1, y1), score, kps in _blazeface(full_range)(rgb):
            box = (x0 / f, y0 / f, (x1 - x0) / f, (y1 - y0) / f)
            found.append(FaceBox(box, score, "mediapipe", kps.astype(np.float64) / f))
    kept: list[FaceBox] = []
    for face in sorted(found, key=lambda b: -b.score):
        if all(iou(face.bbox, k.bbox) < 0.3 for k in kept):
            kept.append(face)
    return kept


# The small-face pass (:func:`detect_small_faces`): square tiles whose side is the picture's longer side
# divided by each of these, each tile overlapping its neighbours by at least half a tile (so a face up to
# half a tile wide lies whole inside some tile). BlazeFace short-range sees the whole frame at 128 px, so
# it misses faces under about 1/8 of the frame; tiles of 1/2, 1/3 and 1/4 of it reach faces of about
# 1/30 of the frame. On pyfeat_BWPictureHuman.jpg (2560 px, a 250-px turned face) the whole frame gives
# nothing, the tiles 0.74 (1/3), 0.66 (1/2) and 0.62 (1/4).
TILE_DIVISIONS = (2, 3, 4)


def _tile_starts(n: int, tile: int) -> np.ndarray:
    """Tile origins along one side of ``n`` pixels: first and last flush with the edges, at most half a
    tile apart."""
    if n <= tile:
        return np.zeros(1, dtype=np.int64)
    k = int(np.ceil((n - tile) / (tile / 2.0))) + 1
    return np.linspace(0, n - tile, k).round().astype(np.int64)


def detect_small_faces(image: np.ndarray, divisions: tuple[int, ...] = TILE_DIVISIONS) -> list[FaceBox]:
    """BlazeFace short-range on overlapping square tiles at several scales; hits merged across tiles.

    Each tile is shrunk to the model input with pixel-area averaging first: the detector's own bilinear
    letterbox samples a large tile without low-pass filtering, and on grainy photos the aliased grain
    hides faces (on pyfeat_BWPictureHuman.jpg a 960-px tile scores its face 0.74 area-shrunk, 0.35 not).
    Scores are the detector's; these hits need checking before they count (see
    :func:`fercurate.faces.multi.find_faces`), since many small tiles give the detector many chances
    to fire on a hand or a glass. Tiles smaller than the model input are skipped.
    """
    rgb = to_rgb(image)
    h, w = rgb.shape[:2]
    model = _blazeface(False)
    size = model.config.size
    boxes, scores, kps = [], [], []
    for div in divisions:
        tile = round(max(h, w) / div)
        if tile < size:
            continue
        f = size / tile
        for y in _tile_starts(h, tile):
            for x in _tile_starts(w, tile):
                part = rgb[y : y + tile, x : x + tile]
                small = cv2.resize(
                    part, (max(1, round(part.shape[1] * f)), max(1, round(part.shape[0] * f))),
                    interpolation=cv2.INTER_AREA,
                )
                sx, sy = part.shape[1] / small.shape[1], part.shape[0] / small.shape[0]
                for (x0, y0, x1, y1), score, k in model(small):
                    boxes.append((x0 * sx + x, y0 * sy + y, x1 * sx + x, y1 * sy + y))
                    scores.append(score)
                    kps.append(k * (sx, sy) + (x, y))
    if not boxes:
        return []
    merged = weighted_nms(np.array(boxes), np.array(scores), np.array(kps), NMS_IOU)
    return [
        FaceBox((float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])), s, "mediapipe", k.astype(np.float64))
        for b, s, k in merged
    ]


def iou(a: Bbox, b: Bbox) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def detect_dlib(image: np.ndarray, upsample: int = 1) -> list[FaceBox]:
    """dlib's HOG detector; the score is a sigmoid of its SVM margin (0.5 = the detector's threshold)."""
    img, f = _upscale(image)
    gray = to_gray(img)
    rects, margins, _ = _dlib_detector().run(gray, upsample, 0.0)
    out = []
    for r, m in zip(rects, margins):
        box = (r.left() / f, r.top() / f, (r.right() - r.left() + 1) / f, (r.bottom() - r.top() + 1) / f)
        out.append(FaceBox(box, float(1.0 / (1.0 + np.exp(-2.0 * m))), "dlib"))
    return out


def detect_faces(image: np.ndarray, method: str = "mediapipe") -> list[FaceBox]:
    """All faces found, confident ones (score >= 0.7) first, then largest first.

    ``method`` "mediapipe" falls back to dlib HOG when BlazeFace finds nothing.
    """
    if method == "mediapipe":
        faces = detect_mediapipe(image) or detect_dlib(image)
    elif method == "dlib":
        faces = detect_dlib(image)
    else:
        raise ValueError(f"unknown face detector {method!r} (use 'mediapipe' or 'dlib')")
    return sorted(faces, key=lambda b: (b.score < 0.7, -b.area, -b.score))
