"""MediaPipe's face-mesh landmark network run directly on face crops with LiteRT: no detector, no tracking.

When the face box is already known (a dataset's bbox, or our own detector) MediaPipe's FaceMesh
solution would waste time on its own detector and fail on tiny faces. :class:`MeshLandmarker` runs
only the landmark network that MediaPipe published (Apache-2.0, shipped as package data under
``fercurate/faces/models/``, see its NOTICE) on 192x192 RGB crops, on LiteRT (``ai-edge-litert``):

* ``face_landmark.tflite``: 468 points and a face-flag logit;
* the attention model (478 points: refined lips, eyes and irises). Its three MediaPipe custom ops
  are not in stock LiteRT, so ``scripts/convert_models.py`` cut the unchanged model at those ops into a
  backbone and region heads; the ops themselves (region crop matrices, bilinear feature crops,
  back-transform of the region points) run here in numpy, as MediaPipe's kernels define them, and the
  region points replace the mesh's as MediaPipe's ``TensorsToFaceLandmarksWithAttention`` does.

The input is what MediaPipe's graph fed the network (the RGB crop scaled to 0..1), so the points agree
with mediapipe 0.10.21's to about 1e-4 px.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

INPUT_SIZE = 192
NUM_POINTS = {False: 468, True: 478}
MODELS = Path(__file__).resolve().parent / "models"


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence what C++ code (LiteRT) prints on file descriptor 2 while models start up.

    LiteRT writes lines such as "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." straight to
    the process's stderr, which would break progress bars; set FERCURATE_NATIVE_LOGS=1 to see them.
    """
    if os.environ.get("FERCURATE_NATIVE_LOGS") == "1":
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class TfliteModel:
    """One packaged ``.tflite`` model on a LiteRT interpreter, with its tensors looked up by name."""

    def __init__(self, name: str, threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        path = MODELS / name
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} is missing from the fercurate package (reinstall it)")
        with quiet_native_stderr():
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
            self.interpreter.allocate_tensors()
        self.inputs = {d["name"]: d["index"] for d in self.interpreter.get_input_details()}
        self.outputs = {d["name"]: d["index"] for d in self.interpreter.get_output_details()}

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Run on one example (no batch axis in or out); returns every output by name."""
        it = self.interpreter
        for name, value in inputs.items():
            it.set_tensor(self.inputs[name], np.ascontiguousarray(value[None], dtype=np.float32))
        it.invoke()
        return {name: it.get_tensor(i)[0] for name, i in self.outputs.items()}


# --- MediaPipe's custom ops (mediapipe/util/tflite/operations, v2 kernels), in numpy ---------------


def _rotation(r: float) -> np.ndarray:
    c, s = np.cos(r), np.sin(r)
    return np.array([[c, -s], [s, c]])


def landmarks_to_transform_matrix(landmarks: np.ndarray, options: dict) -> np.ndarray:
    """Landmarks2TransformMatrix: the 4x4 matrix mapping a region crop's pixels to the feature map.

    The region is the box of ``subset_idxs`` in a frame turned so that the left->right rotation
    landmarks are level, scaled by ``scale_x``/``scale_y`` and sampled at ``output_width`` x ``output_height``.
    """
    pts = landmarks.reshape(-1, 3)[:, :2].astype(np.float64)
    left, right = pts[options["left_rotation_idx"]], pts[options["right_rotation_idx"]]
    rot = options.get("target_rotation_radians", 0.0) - np.arctan2(right[1] - left[1], right[0] - left[0])
    turned = pts[np.asarray(options["subset_idxs"])] @ _rotation(rot).T
    hi, lo = turned.max(axis=0), turned.min(axis=0)
    width, height = hi - lo
    centre = _rotation(-rot) @ ((hi + lo) / 2.0)
    ow, oh = options["output_width"], options["output_height"]
    shift = np.eye(4)
    shift[:2, 3] = centre
    turn = np.eye(4)
    turn[:2, :2] = _rotation(-rot)
    scale = np.diag([options["scale_x"] * width / ow, options["scale_y"] * height / oh, 1.0, 1.0])
    back = np.eye(4)
    back[:2, 3] = (-ow / 2.0, -oh / 2.0)
    return (shift @ turn @ scale @ back).astype(np.float32)


def transform_tensor_bilinear(features: np.ndarray, matrices: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TransformTensorBilinear: sample (H, W, C) features at each matrix's image of an out_h x out_w grid.

    ``matrices`` (K, 4, 4) or (4, 4) -> (K, out_h, out_w, C) or (out_h, out_w, C). Pixel centres at
    +0.5 (the kernel's align-corners correction); samples outside the map are 0.
    """
    single = matrices.ndim == 2
    mats = np.asarray(matrices, np.float32).reshape(-1, 4, 4)
    h, w, c = features.shape
    xt, yt = mats[:, 0].copy(), mats[:, 1].copy()
    xt[:, 3] += xt[:, 0] * 0.5 + xt[:, 1] * 0.5 - 0.5
    yt[:, 3] += yt[:, 0] * 0.5 + yt[:, 1] * 0.5 - 0.5
    gy, gx = (g.ravel() for g in np.mgrid[0:out_h, 0:out_w].astype(np.float32))
    tx = (xt[:, 0:1] * gx + xt[:, 1:2] * gy + xt[:, 3:4]).ravel()
    ty = (yt[:, 0:1] * gx + yt[:, 1:2] * gy + yt[:, 3:4]).ravel()
    outside = (tx < 0) | (tx > w - 1) | (ty < 0) | (ty > h - 1)
    fx0, fy0 = np.floor(tx), np.floor(ty)
    fx, fy = (tx - fx0)[:, None], (ty - fy0)[:, None]
    x0, y0 = fx0.astype(np.int64), fy0.astype(np.int64)
    # reads one past the border give 0: index a zero-padded copy, flattened to (pixels, channels)
    padded = np.zeros((h + 2, w + 2, c), np.float32)
    padded[1:-1, 1:-1] = features
    flat = padded.reshape(-1, c)
    xa, xb = np.clip(x0, -1, w) + 1, np.clip(x0 + 1, -1, w) + 1
    ya, yb = (np.clip(y0, -1, h) + 1) * (w + 2), (np.clip(y0 + 1, -1, h) + 1) * (w + 2)
    upper = (1 - fx) * flat.take(ya + xa, axis=0) + fx * flat.take(ya + xb, axis=0)
    lower = (1 - fx) * flat.take(yb + xa, axis=0) + fx * flat.take(yb + xb, axis=0)
    out = fy * lower + (1 - fy) * upper
    out[outside] = 0.0
    out = out.reshape(len(mats), out_h, out_w, c)
    return out[0] if single else out


def transform_landmarks(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """TransformLandmarks (2D): region-crop points (N, 2) -> mesh-crop pixels through the matrix."""
    return (points @ matrix[:2, :2].T + matrix[:2, 3]).astype(np.float32)


class _AttentionModel:
    """The 478-point attention model: backbone -> custom ops (numpy) -> region heads -> refinement."""

    def __init__(self, threads: int) -> None:
        self.spec = json.loads((MODELS / "face_landmark_attention.json").read_text())
        refinement = json.loads((MODELS / "face_landmark_refinement.json").read_text())
        self.refinement = [v for k, v in sorted(refinement.items()) if not k.startswith("_")]
        self.backbone = TfliteModel("face_landmark_attention_backbone.tflite", threads)
        self.heads = TfliteModel("face_landmark_attention_heads.tflite", threads)

    def __call__(self, crop: np.ndarray) -> tuple[np.ndarray, float]:
        """(478, 3) points in crop pixels and the face-flag logit for one 0..1 float crop."""
        t = self.backbone(input_1=crop)
        ops = self.spec["ops"]
        for op in ops:
            if op["op"] == "Landmarks2TransformMatrix":
                t[op["outputs"][0]] = landmarks_to_transform_matrix(t[op["inputs"][0]], op["options"])
        # the region crops, all from the same feature map at the same size: one gather
        crops = [op for op in ops if op["op"] == "TransformTensorBilinear"]
        features = t[crops[0]["inputs"][0]]
        size = crops[0]["options"]["output_height"], crops[0]["options"]["output_width"]
        shapes = {(op["inputs"][0], op["options"]["output_height"], op["options"]["output_width"]) for op in crops}
        if len(shapes) != 1:
            raise ValueError("attention model spec: region crops differ in source or size")
        sampled = transform_tensor_bilinear(features, np.stack([t[op["inputs"][1]] for op in crops]), *size)
        for op, region in zip(crops, sampled):
            t[op["outputs"][0]] = region
        t.update(self.heads(**{n: t[n] for n in self.spec["heads"]["inputs"]}))
        for op in ops:
            if op["op"] == "TransformLandmarks":
                pts, matrix = (t[n] for n in op["inputs"])
                t[op["outputs"][0]] = transform_landmarks(pts, matrix)
        out = np.zeros((478, 3), np.float32)
        out[:468] = t["output_mesh_identity"].reshape(468, 3)
        regions = self.spec["regions"]
        for ref in self.refinement:
            idx = ref["index"]
            out[idx, :2] = t[regions[ref["output"]]]
            if "z_average" in ref:
                out[idx, 2] = out[ref["z_average"], 2].mean()
        return out, float(np.asarray(t["conv_faceflag"]).ravel()[0])


class MeshLandmarker:
    """The face-mesh landmark network on 192x192 RGB crops; one instance per process (not thread-safe).

    ``run(crops)`` returns ``points`` (B, N, 3) in crop pixels (x right, y down, z = depth in the same
    pixel scale, smaller = nearer the camera) and ``scores`` (B,), the face-presence probability.
    """

    def __init__(self, attention: bool = False, threads: int = 1) -> None:
        self.attention = attention
        self.num_points = NUM_POINTS[attention]
        self._lock = threading.Lock()
        if attention:
            self._attention = _AttentionModel(threads)
        else:
            self._base = TfliteModel("face_landmark.tflite", threads)
            details = self._base.interpreter.get_output_details()
            self._mesh_out = next(d["name"] for d in details if int(np.prod(d["shape"])) == 468 * 3)
            self._flag_out = next(d["name"] for d in details if int(np.prod(d["shape"])) == 1)

    def _one(self, crop: np.ndarray) -> tuple[np.ndarray, float]:
        x = crop.astype(np.float32) * np.float32(1.0 / 255.0)
        if self.attention:
            return self._attention(x)
        out = self._base(input_1=x)
        return out[self._mesh_out].reshape(468, 3), float(out[self._flag_out].ravel()[0])

    def run(self, crops: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks and presence scores for a batch of 192x192x3 uint8 RGB crops.

        Crops go through the network one at a time: on CPU LiteRT's XNNPACK kernels are fastest at
        batch 1 (1.6 ms per crop, vs 1.9 ms at batch 16 and 2.7 ms at batch 64, measured on one core).
        """
        n = len(crops)
        points = np.zeros((n, self.num_points, 3), dtype=np.float32)
        logits = np.zeros(n, dtype=np.float32)
        with self._lock:
            for i, crop in enumerate(crops):
                if crop.shape != (INPUT_SIZE, INPUT_SIZE, 3) or crop.dtype != np.uint8:
                    raise ValueError(
                        f"mesh input must be {INPUT_SIZE}x{INPUT_SIZE}x3 uint8, got {crop.shape} {crop.dtype}"
                    )
                points[i], logits[i] = self._one(crop)
        scores = (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
        return points, scores

    def close(self) -> None:
        """Nothing to release beyond the interpreters, which go with the object."""


@lru_cache(maxsize=None)
def get_landmarker(attention: bool = False) -> MeshLandmarker:
    """The process-wide landmarker (building one loads the model: ~0.05 s)."""
    return MeshLandmarker(attention=attention)
