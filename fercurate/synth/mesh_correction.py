"""Where the face mesh's 68 iBUG points sit on small faces, corrected towards the iBUG convention.

The mesh vertices standing in for the 68 iBUG points (:data:`fercurate.faces.landmarks.IBUG68_FROM_MEDIAPIPE`)
were matched to dlib on faces of 80 px and more, where they agree with dlib's iBUG-trained predictor
to within 0.012 face lengths (nose bridge to chin) by the per-point median (JAFFE + faces/: 239
faces). On 48x48 FER2013 crops they do not: the fast mesh puts 59 of the 68 points more than 0.01
face lengths above dlib's (median 0.022, up to 0.08; the chin 0.03), so masks fitted to the mesh
left dlib's chin outside on 1 face in 10. The per-point medians agree between FERPlus validation and
test to within 0.003, i.e. they are a property of the mesh at that size, not noise, so they are
measured once (in the face frame, in face lengths) and added to the mesh's points: fully on faces up
to :data:`FULL_BELOW` px nose-to-chin, fading out by :data:`NONE_ABOVE` px (FERPlus faces: median
30 px; JAFFE's: about 90).

The shipped ``mesh_offsets.json`` was measured on the FERPlus *validation* split (never the test
split the benchmark reports on) with::

    python -m fercurate.synth.refit mesh-offsets ../shared/data/ferplus/FER2013Valid/*.png
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import numpy as np

from fercurate.synth import shapes as S

OFFSETS_FILE = "mesh_offsets.json"
FULL_BELOW = 32.0  # face length (px, nose bridge to chin) up to which the offset applies fully
NONE_ABOVE = 64.0  # ... and from which it does not apply at all


@lru_cache(maxsize=1)
def mesh_offsets() -> np.ndarray:
    """(68, 2) offsets (sideways, downward) in face lengths, added to small faces' mesh points."""
    text = resources.files("fercurate.synth").joinpath(OFFSETS_FILE).read_text()
    return np.asarray(json.loads(text)["offsets"], dtype=np.float64)


def weight(length: float) -> float:
    """How much of the offset a face ``length`` px from nose bridge to chin gets (1 small, 0 large)."""
    return float(np.clip((NONE_ABOVE - length) / (NONE_ABOVE - FULL_BELOW), 0.0, 1.0))


def correct_mesh(points: np.ndarray) -> np.ndarray:
    """The mesh's 68 iBUG points moved by the measured small-face offset (unchanged for large faces)."""
    # FaceFrame's axes and length, computed inline: this runs once per face on the hot path
    pts = np.asarray(points, dtype=np.float64)
    length = float(np.hypot(*(pts[S.CHIN] - pts[27])))
    w = weight(length)
    if w == 0.0 or length < 1e-6:
        return pts
    axis = pts[S.EYE_LEFT].mean(axis=0) - pts[S.EYE_RIGHT].mean(axis=0)
    norm = float(np.hypot(*axis))
    right = axis / norm if norm > 1e-6 else np.array([1.0, 0.0])
    down = np.array([-right[1], right[0]])
    off = mesh_offsets()
    return pts + (w * length) * (off[:, :1] * right + off[:, 1:] * down)
