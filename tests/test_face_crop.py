"""One face crop for RAN's data and the occlusion scorer, and the paper's 5-point dlib alignment on a real face."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fercurate.faces.crop import DLIB5_TEMPLATE, aligned_crop, dlib5_points, face_crop
from fercurate.faces.store import decode_face
from fercurate.ran import data as rdata
from fercurate.scorer.faces import FACE_SIZE as SIZE


@pytest.fixture
def grey_png(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur(rng.integers(0, 256, (70, 90), dtype=np.uint8), (5, 5), 0)
    img[:, -1] = 255  # a distinct right edge, so padding by edge replication is visible
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), img)
    return path


@pytest.mark.parametrize("box", [(20.0, 10.0, 40.0, 50.0), (70.0, -8.0, 36.0, 30.0), None],
                         ids=["inside-shrunk", "outside-padded", "no-box"])
def test_ran_data_and_the_suggest_scorer_cut_the_same_face(grey_png: Path, box) -> None:  # noqa: ANN001
    scorer = decode_face(str(grey_png), box, SIZE, grey=True)[0][0]  # the scorer's 48 px grey crop
    ran, (w, h), matrix = rdata.decode_face(str(grey_png), None if box is None else np.asarray(box, np.float32), SIZE)
    assert (w, h) == (90, 70) and matrix is None
    assert scorer.shape == (SIZE, SIZE) and ran.shape == (3, SIZE, SIZE)
    for channel in ran:  # the grey image decoded as colour: three equal channels, each the scorer's crop
        np.testing.assert_array_equal(channel, scorer)
    direct = face_crop(cv2.imread(str(grey_png), cv2.IMREAD_GRAYSCALE), box, SIZE)
    np.testing.assert_array_equal(direct, scorer)


def test_face_crop_pads_by_repeating_the_edge_not_with_black() -> None:
    img = np.full((40, 40), 200, np.uint8)
    out = face_crop(img, (30.0, 0.0, 20.0, 20.0), 20)  # half the box lies right of the image
    assert out.shape == (20, 20) and out.min() == 200


def test_face_crop_without_a_box_takes_the_whole_image_made_square() -> None:
    img = np.arange(30 * 30, dtype=np.uint32).reshape(30, 30).astype(np.uint8)
    np.testing.assert_array_equal(face_crop(img, None, 30), img)


def _astronaut() -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """scikit-image's astronaut photo (public domain, NASA) and dlib's HOG detection of her face."""
    import dlib
    from skimage import data

    rgb = data.astronaut()
    faces = sorted(dlib.get_frontal_face_detector()(rgb, 1), key=lambda r: -r.width() * r.height())
    r = faces[0]
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (float(r.left()), float(r.top()), float(r.width()), float(r.height()))


@pytest.mark.parametrize("roll", [0.0, 25.0])
def test_dlib5_alignment_puts_eyes_and_nose_on_the_template(roll: float) -> None:
    img, (x, y, w, h) = _astronaut()
    rot = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), roll, 1.0)  # roll the head about the face centre
    rolled = cv2.warpAffine(img, rot, img.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
    size = 224
    chip, matrix = aligned_crop(rolled, (x, y, w, h), size)
    assert chip.shape == (size, size, 3)
    # landmarks found again, independently, on the aligned chip (face square = the template's unpadded square)
    face = size / 1.4
    found = dlib5_points(chip, (0.2 * face, 0.2 * face, face, face))
    target = DLIB5_TEMPLATE * size
    err = np.linalg.norm(found - target, axis=1)
    assert err[:4].max() < 4.0, f"eye corners off the template by {err[:4].round(1)} px"
    assert err[4] < 5.0, f"nose off the template by {err[4]:.1f} px"
    eyes = found[[0, 1]].mean(0), found[[2, 3]].mean(0)
    assert abs(eyes[0][1] - eyes[1][1]) < 3.0, "eyes are not level after alignment"
    # the matrix carries the original image's landmarks to the same places
    moved = dlib5_points(rolled, (x, y, w, h)) @ matrix[:, :2].T + matrix[:, 2]
    assert np.linalg.norm(moved - target, axis=1)[:4].max() < 4.0


def test_aligned_faces_are_cached_apart_from_box_crops(workspace: Path) -> None:
    from fixtures_ran import make_toy_manifest

    from fercurate.manifest import read_manifest

    make_toy_manifest(workspace, size=32, per_class={"train": 1, "val": 0, "test": 1})
    samples = rdata.select_samples(read_manifest(workspace / "manifests" / "toy.parquet"), splits=["train"])
    plain = rdata.load_faces(samples, 32, workers=1, workspace=workspace)
    aligned = rdata.load_faces(samples, 32, workers=1, workspace=workspace, align="dlib5")
    assert plain.cache_path != aligned.cache_path
    assert plain.matrices is None and aligned.matrices.shape == (len(samples), 2, 3)
    again = rdata.load_faces(samples, 32, workers=1, workspace=workspace, align="dlib5")  # from the cache
    np.testing.assert_array_equal(again.faces, aligned.faces)
    np.testing.assert_allclose(again.matrices, aligned.matrices)
