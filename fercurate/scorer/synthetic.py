"""Pre-training material for the scorer: faces with a synthetic occluder of a known type, no labels needed.

The occluders are painted by fercurate's synthetic-occlusion painters
(:func:`fercurate.synth.occluders.occlude_crop`: the dataset variants' masks, glasses, hands, scarves and
objects, fitted to a FER-style crop's mean landmarks), so the scorer learns the occluders that
``fercurate synth`` draws. Everything is drawn from a ``numpy`` Generator, so a seed reproduces the batch.
"""

from __future__ import annotations

import numpy as np

from fercurate.schema import OCCLUDED_TYPES
from fercurate.scorer.faces import FACE_SIZE
from fercurate.synth.occluders import occlude_crop


def synthetic_set(
    faces: np.ndarray, n: int, rng: np.random.Generator, occluded_fraction: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` training faces drawn from ``faces`` (N, 48, 48): a fraction occluded with a random type.

    Returns (images (n, 48, 48) uint8, targets (n, 1 + 5) float32: occluded, then one-hot type in
    :data:`fercurate.schema.OCCLUDED_TYPES` order).
    """
    if faces.shape[1:] != (FACE_SIZE, FACE_SIZE):
        raise ValueError(f"faces must be {FACE_SIZE}x{FACE_SIZE} grayscale, got {faces.shape[1:]}")
    if len(faces) < 2:
        raise ValueError("need at least two faces to draw synthetic occlusions from")
    pick = rng.integers(0, len(faces), n)
    out = faces[pick].copy()
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    targets = np.zeros((n, 1 + len(OCCLUDED_TYPES)), np.float32)
    for i in np.flatnonzero(rng.random(n) < occluded_fraction):
        k = int(rng.integers(0, len(OCCLUDED_TYPES)))
        out[i] = occlude_crop(np.ascontiguousarray(out[i]), OCCLUDED_TYPES[k], rng)
        targets[i, 0] = 1.0
        targets[i, 1 + k] = 1.0
    return out, targets


__all__ = ["synthetic_set"]
