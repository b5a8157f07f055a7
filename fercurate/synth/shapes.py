"""The 68-point face shape (dlib / iBUG order): index groups, mirroring, mean shapes and priors.

Everything in ``fercurate.synth`` works on 68 points. Two reference shapes ship with the package in
``face_shapes.json`` (fitted on real faces by :func:`fercurate.synth.refit.fit_shapes`):

* ``mean``: the Procrustes mean frontal face (eye centres at (-0.5, 0) and (0.5, 0)); the frame the
  procedural masks and occluders are drawn in.
* ``crop_prior``: where the landmarks of a FER2013-style face crop lie, in units of the crop (0..1);
  the fallback placement for faces the landmark detectors cannot find.

The shipped file was fitted on the 213 JAFFE faces plus every 20th FERPlus *training* PNG (1,008 of
1,428 found by dlib; the test split is never used), with::

    python -m fercurate.synth.refit shapes --frontal ../shared/data/jaffe/*.tiff \
        --crops $(ls ../shared/data/ferplus/FER2013Train/*.png | awk 'NR%20==1')
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources

import numpy as np

from fercurate.compat import moved_module

N_POINTS = 68
JAW = np.arange(0, 17)
CHIN = 8
BROW_RIGHT = np.arange(17, 22)  # image-left brow (the subject's right)
BROW_LEFT = np.arange(22, 27)
NOSE_BRIDGE = np.arange(27, 31)
NOSE_TIP = 30
NOSTRILS = np.arange(31, 36)
EYE_RIGHT = np.arange(36, 42)  # image-left eye
EYE_LEFT = np.arange(42, 48)
EYES = np.arange(36, 48)
MOUTH_OUTER = np.arange(48, 60)
MOUTH = np.arange(48, 68)

# Index of each point's mirror image (left <-> right).
MIRROR = np.array(
    [16 - i for i in range(17)]
    + [26, 25, 24, 23, 22, 21, 20, 19, 18, 17]
    + [27, 28, 29, 30]
    + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65]
)

SHAPES_FILE = "face_shapes.json"


def as_points(points: np.ndarray | Sequence[float], where: str = "landmarks") -> np.ndarray:
    """A (68, 2) float64 array from (68, 2) or flat (136,) input; ValueError otherwise."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim == 1 and arr.size == 2 * N_POINTS:
        arr = arr.reshape(N_POINTS, 2)
    if arr.shape != (N_POINTS, 2):
        raise ValueError(f"{where}: expected 68 (x, y) points, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{where}: non-finite coordinates")
    return arr


def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the image-left and image-right eyes."""
    return points[EYE_RIGHT].mean(axis=0), points[EYE_LEFT].mean(axis=0)


def normalise(points: np.ndarray) -> np.ndarray:
    """Similarity-normalise a shape: eye midpoint at the origin, eyes on the x axis, 1 apart."""
    left, right = eye_centres(points)
    centre = (left + right) / 2
    axis = right - left
    scale = float(np.hypot(*axis))
    if scale <= 1e-9:
        raise ValueError("degenerate shape: both eyes at the same point")
    cos, sin = axis / scale
    rot = np.array([[cos, sin], [-sin, cos]])
    return (points - centre) @ rot.T / scale


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (2x3) taking ``src`` points onto ``dst`` (Umeyama)."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.sign(np.linalg.det(u @ vt)) or 1.0
    corr = np.diag([1.0, sign])
    rot = u @ corr @ vt
    var = (s**2).sum() / len(src)
    scale = float((sig * np.diag(corr)).sum() / var) if var > 0 else 1.0
    mat = np.zeros((2, 3))
    mat[:, :2] = scale * rot
    mat[:, 2] = mu_d - scale * rot @ mu_s
    return mat


def apply_affine(mat: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ mat[:, :2].T + mat[:, 2]


def symmetrise(points: np.ndarray) -> np.ndarray:
    """Average a normalised shape with its mirror image (x -> -x, left/right indices swapped)."""
    mirrored = points[MIRROR] * np.array([-1.0, 1.0])
    return (points + mirrored) / 2


@lru_cache(maxsize=1)
def _load() -> dict[str, np.ndarray]:
    text = resources.files("fercurate.synth").joinpath(SHAPES_FILE).read_text()
    raw = json.loads(text)
    return {k: as_points(raw[k], f"{SHAPES_FILE}:{k}") for k in ("mean", "crop_prior")}


def mean_shape() -> np.ndarray:
    """The eye-normalised symmetric mean frontal face (68, 2); a copy, safe to modify."""
    return _load()["mean"].copy()


def crop_prior(width: float, height: float, box: Sequence[float] | None = None) -> np.ndarray:
    """Mean landmarks of a FER2013-style crop, placed in ``box`` (x, y, w, h) or the whole image."""
    x, y, w, h = box if box is not None else (0.0, 0.0, float(width), float(height))
    return _load()["crop_prior"] * np.array([w, h]) + np.array([x, y])


# fitting the shipped file moved to fercurate.synth.refit (it needs the placement chain, which reads this module)
__getattr__ = moved_module(__name__, "fercurate.synth.refit")
