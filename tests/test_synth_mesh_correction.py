"""The small-face correction of the mesh's 68 points (fercurate.synth.mesh_correction)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from fercurate.synth import mesh_correction as C
from fercurate.synth import refit
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
    np.testing.assert_allclose(refit.fit_offsets(np.stack(mesh), np.stack(dlib)), known, atol=1e-9)



def test_the_refit_entry_point_measures_offsets_like_the_shipped_file(shared_data, tmp_path):
    crops = sorted((shared_data / "ferplus" / "FER2013Valid").glob("*.png"))[:40]
    if len(crops) < 40:
        pytest.skip("FERPlus validation crops not available")
    out = tmp_path / C.OFFSETS_FILE
    refit.main(["mesh-offsets", *map(str, crops), "--out", str(out)])
    fitted = json.loads(out.read_text())
    assert 0 < fitted["fitted_on"]["faces"] <= 40 and fitted["fitted_on"]["images"] == 40
    offsets = np.asarray(fitted["offsets"])
    assert offsets.shape == (68, 2) and np.abs(offsets - C.mesh_offsets()).max() < 0.05


MOVED = (
    [("fercurate.synth.calibration", n, C)
     for n in ("OFFSETS_FILE", "FULL_BELOW", "NONE_ABOVE", "mesh_offsets", "weight", "correct_mesh")]
    + [("fercurate.synth.calibration", n, refit) for n in ("fit_offsets", "offsets_json")]
    + [("fercurate.synth.shapes", n, refit) for n in ("fit_shapes", "procrustes_mean")]
)


@pytest.mark.parametrize(("old", "name", "new"), MOVED)
def test_moved_names_still_import_from_their_old_paths_with_a_warning(old, name, new):
    with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} moved to {new.__name__}\.{name}"):
        value = getattr(importlib.import_module(old), name)
    assert value is getattr(new, name)
