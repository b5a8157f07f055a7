"""The small-face correction of the mesh's 68 points (fercurate.synth.mesh_correction)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from fercurate.synth import mesh_correction as C
from fercurate.synth import shapes as S
from fercurate.synth.outline import FaceFrame


def _face(length_px: float, angle_deg: float = 0.0) -> np.ndarray:
    """The mean face scaled so that nose bridge to chin is ``length_px``, turned in the image plane."""
    mean = S.mean_shape()
    pts = mean / FaceFrame.from_points(mean).length * length_px
    a = np.radians(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return pts @ rot.T + [100.0, 80.0]


def test_shipped_offsets_are_68_pairs_measured_on_validation_faces():
    offsets = C.mesh_offsets()
    assert offsets.shape == (68, 2) and np.isfinite(offsets).all()
    assert np.abs(offsets).max() < 0.1  # a few hundredths of a face length, not a reshaping
    meta = json.loads((Path(C.__file__).with_name(C.OFFSETS_FILE)).read_text())["fitted_on"]
    assert meta["faces"] > 3000 and meta["faces"] <= meta["images"]


def test_small_faces_move_by_the_offset_in_their_own_frame_large_faces_not_at_all():
    assert C.weight(20) == 1.0 and C.weight(C.FULL_BELOW) == 1.0 and C.weight(C.NONE_ABOVE) == 0.0
    assert C.weight(48) == 0.5
    big = _face(90.0)
    assert np.array_equal(C.correct_mesh(big), big)
    for angle in (0.0, 30.0):
        small = _face(24.0, angle)
        moved = C.correct_mesh(small)
        frame = FaceFrame.from_points(small)
        shift = (frame.to_frame(moved) - frame.to_frame(small)) / frame.length
        np.testing.assert_allclose(shift, C.mesh_offsets(), atol=1e-9)


def test_fit_recovers_a_known_offset():
    rng = np.random.default_rng(0)
    known = rng.normal(0, 0.02, size=(68, 2))
    mesh, dlib = [], []
    for k in range(25):
        m = _face(30.0 + k, angle_deg=k - 12)
        frame = FaceFrame.from_points(m)
        mesh.append(m)
        dlib.append(frame.from_frame(frame.to_frame(m) + known * frame.length))
    np.testing.assert_allclose(C.fit_offsets(np.stack(mesh), np.stack(dlib)), known, atol=1e-9)


@pytest.mark.parametrize("name", ["OFFSETS_FILE", "FULL_BELOW", "NONE_ABOVE", "mesh_offsets", "weight", "correct_mesh"])
def test_the_old_calibration_path_still_gives_each_name_with_a_warning(name):
    with pytest.warns(DeprecationWarning, match=rf"synth\.calibration\.{name} moved to fercurate\.synth\.mesh_correction"):
        old = getattr(importlib.import_module("fercurate.synth.calibration"), name)
    assert old is getattr(C, name)
