"""Geometry of synthetic masks and occluders on real faces (landmarks from fercurate.faces)."""

from __future__ import annotations

import importlib

import cv2
import numpy as np
import pytest

from fercurate.synth import masks as M
from fercurate.synth import occluders as O
from fercurate.synth import outline as G
from fercurate.synth import placement as P
from fercurate.synth import shapes as S
from fercurate.synth import templates as T
from fercurate.synth.seeds import rng, sample_seed
from fercurate.synth.warp import ThinPlateSpline, composite

FACES = {
    "frontal_256": "jaffe/KA.AN1.39.tiff",
    "photo": "faces/pyfeat_single_face.jpg",
    "yaw45": "faces/pyfeat_45-m7-di-ph.jpg",
    "fer48_a": "ferplus/FER2013Test/fer0032222.png",
    "fer48_b": "ferplus/FER2013Test/fer0032226.png",
}


@pytest.fixture(scope="module")
def faces(shared_data):
    """name -> (BGR image, 68 landmarks) for real faces of several sizes and poses."""
    out = {}
    paths = {k: shared_data / v for k, v in FACES.items()}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        pytest.skip(f"real faces not available: {missing[0]}")
    images = [cv2.imread(str(p)) for p in paths.values()]
    for name, img, loc in zip(paths, images, P.locate_batch(images, [None] * len(images))):
        assert loc.method in ("mediapipe", "dlib"), f"{name}: landmarks failed: {loc.notes}"
        out[name] = (img, loc.points)
    return out


def _in_image(img: np.ndarray, pts: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return (pts[:, 0] >= 0) & (pts[:, 0] <= w - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= h - 1)


def _check_mask(img: np.ndarray, pts: np.ndarray, placed: M.Placed, where: str) -> None:
    covered, eyes_free, frac = G.coverage(placed.polygon, pts)
    assert covered, f"{where}: nose tip/mouth/chin not all inside the mask outline ({frac:.2f})"
    assert eyes_free, f"{where}: an eye landmark is inside the mask outline"
    # and on the pixels: opaque over the visible lower-face landmarks, clear over the eyes
    cover = pts[G.COVER_POINTS][_in_image(img, pts[G.COVER_POINTS])]
    assert (G.sample(placed.alpha, cover) > 0.5).all(), f"{where}: lower face not opaque"
    assert (G.sample(placed.alpha, pts[G.EYE_POINTS]) < 0.5).all(), f"{where}: eyes painted over"
    # pixels change only where something was drawn (mask or ear loops near it)
    diff = np.abs(placed.image.astype(int) - img.astype(int)).max(axis=2) > 0
    assert diff.any()
    x0, y0, w, h = cv2.boundingRect(np.round(placed.polygon).astype(np.int32))
    outside = diff.copy()
    frame = G.FaceFrame.from_points(pts)
    pad = int(0.35 * frame.length) + 2
    outside[max(0, y0 - pad) : y0 + h + pad, max(0, x0 - pad) : x0 + w + pad] = False
    assert not outside.any(), f"{where}: pixels changed far from the mask"


def test_the_45_degree_face_is_really_turned(faces):
    _, pts = faces["yaw45"]
    assert abs(G.FaceFrame.from_points(pts).yaw) > 30
    _, frontal = faces["frontal_256"]
    assert abs(G.FaceFrame.from_points(frontal).yaw) < 12


@pytest.mark.parametrize("style", M.STYLES)
def test_builtin_masks_cover_lower_face_not_eyes(faces, style):
    for name, (img, pts) in faces.items():
        for k in range(2):
            r = rng(sample_seed(7, name, style, k))
            spec = M.choose_spec(style, r)
            placed = M.apply_mask(img, pts, spec, rng(sample_seed(7, name, style, k), 2))
            _check_mask(img, pts, placed, f"{name} {spec.variant}")


def test_outline_follows_the_jaw(faces):
    img, pts = faces["frontal_256"]
    outline = G.mask_outline(pts)
    frame = G.FaceFrame.from_points(pts)
    # every jaw point from 2 to 14 has an outline vertex just outside it (within 15% of the face)
    for k in range(2, 15):
        d = np.hypot(*(outline - pts[k]).T).min()
        assert d < 0.15 * frame.length, f"jaw point {k} is {d:.1f}px from the outline"
    # the top edge crosses the nose bridge between landmarks 27 and 30
    q = frame.to_frame(outline)
    nose = frame.to_frame(pts[[27, 30]])
    assert nose[0, 1] < q[2, 1] < nose[1, 1]


def test_user_templates_follow_the_face_and_pick_the_turned_view(faces, shared_data):
    cfg = shared_data / "mask_templates" / "masks.cfg"
    if not cfg.exists():
        pytest.skip("MaskTheFace templates not available")
    tset = T.read_template_config(cfg)
    for style in ("surgical_blue", "KN95", "cloth"):
        views = tuple(tset.views(style))
        for name in ("frontal_256", "yaw45", "fer48_a"):
            img, pts = faces[name]
            spec = M.MaskSpec(style, M.TEMPLATE_COLOUR, template_views=views)
            placed = M.apply_mask(img, pts, spec, rng(3))
            covered, eyes_free, _ = G.coverage(placed.polygon, pts)
            assert covered, f"{name} {style}"
            if name == "frontal_256":
                assert placed.view == style
                assert eyes_free
            if name == "yaw45":
                assert placed.view.endswith("_left"), placed.view  # nose towards the image's left


def test_thin_plate_spline_interpolates_its_anchors():
    src = np.array([[0, 0], [10, 0], [0, 10], [10, 10], [5, 5], [2, 8]], float)
    dst = src * 1.5 + [[3, -2]] + np.array([[0, 0], [1, 0], [0, 1], [2, 1], [0.5, 0.2], [0, 0]])
    tps = ThinPlateSpline.fit(src, dst)
    assert np.allclose(tps(src), dst, atol=1e-3)
    # an affine map is reproduced exactly everywhere
    aff = ThinPlateSpline.fit(src, src * 2 + 1)
    probe = np.array([[3.3, 7.1], [-4, 20]])
    assert np.allclose(aff(probe), probe * 2 + 1, atol=1e-6)


def test_point_in_polygon_agrees_with_opencv():
    """The vectorised even-odd test gives pointPolygonTest's answer, edges and vertices counting as inside."""
    r = np.random.default_rng(3)
    for _ in range(300):
        n = int(r.integers(3, 30))
        angles = np.sort(r.uniform(0, 2 * np.pi, n))
        poly = np.round(np.c_[50 + r.uniform(5, 30, n) * np.cos(angles), 50 + r.uniform(5, 30, n) * np.sin(angles)])
        pts = np.vstack([np.round(r.uniform(10, 90, (40, 2))), poly[:2], (poly[0] + poly[1]) / 2])
        contour = poly.astype(np.float32).reshape(-1, 1, 2)
        want = [cv2.pointPolygonTest(contour, (float(x), float(y)), True) >= 0 for x, y in pts]
        assert G.inside(poly, pts).tolist() == want
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    assert G.inside(square, [[5, 5], [10, 5], [0, 0], [11, 5], [5, -0.1]]).tolist() == [True, True, True, False, False]


def test_mask_shading_and_compositing_follow_their_formulas():
    """Channel c of a shaded mask = gain * L * (main_c * (A - P) + second_c * P), L = 1.5 * light / A;
    compositing gives colour + image * (1 - A)."""
    r = np.random.default_rng(0)
    h, w = 7, 9
    alpha = r.uniform(0.05, 1, (h, w)).astype(np.float32)
    light = (r.uniform(0, 1, (h, w)) * alpha / M.LIGHT_SCALE).astype(np.float32)
    pattern = (r.uniform(0, 1, (h, w)) * alpha).astype(np.float32)
    layer = np.dstack([light, pattern, np.zeros_like(light), alpha])
    main, second = np.array([0.2, 0.5, 0.9], np.float32), np.array([0.7, 0.1, 0.3], np.float32)
    gain = r.uniform(0.5, 1.1, (h, w)).astype(np.float32)
    got = M._shaded(layer, main, second, gain)
    lit = gain * M.LIGHT_SCALE * light / alpha
    want = np.stack([lit * (main[c] * (alpha - pattern) + second[c] * pattern) for c in range(3)], axis=-1)
    assert np.allclose(got, want, atol=1e-5)
    image = r.integers(0, 256, (h + 4, w + 4, 3), dtype=np.uint8)
    before = image.copy()
    colour = np.clip(got, 0, alpha[..., None])
    composite(image, colour, alpha, (2, 3, w, h))
    expect = np.clip(colour * 255 + before[3 : 3 + h, 2 : 2 + w] * (1 - alpha[..., None]), 0, 255)
    assert np.abs(image[3 : 3 + h, 2 : 2 + w].astype(float) - expect).max() <= 0.51
    untouched = np.ones(image.shape[:2], bool)
    untouched[3 : 3 + h, 2 : 2 + w] = False
    assert (image[untouched] == before[untouched]).all()


def test_occluders_hide_their_region(faces):
    for name, (img, pts) in faces.items():
        frame = G.FaceFrame.from_points(pts)
        eyes = pts[G.EYE_POINTS]
        mouth = pts[S.MOUTH_OUTER]
        inside = lambda p: _in_image(img, p)  # noqa: E731
        r = rng(11)
        # sunglasses: dark lenses over both eyes, mouth untouched
        sun = O.OccluderSpec("glasses", "sunglasses", "dark", 1.0, form="round")
        placed = O.apply_occluder(img, pts, sun, r)
        assert G.inside(placed.polygon, pts[S.EYE_RIGHT].mean(axis=0)[None]).all()
        assert (G.sample(placed.alpha, eyes) > 0.5).mean() > 0.8, name
        assert (G.sample(placed.alpha, mouth[inside(mouth)]) < 0.05).all(), name
        for shape in ("hand", "scarf", "object"):
            # a hand has gaps between the fingers: it hides most, not all, of the eye landmarks
            need = 0.5 if shape == "hand" else 0.8
            up = O.apply_occluder(img, pts, O.OccluderSpec("upper", shape, "red", 0.5), rng(12))
            assert (G.sample(up.alpha, eyes) > 0.5).mean() >= need, f"{name} upper {shape}"
            assert (G.sample(up.alpha, mouth[inside(mouth)]) < 0.5).all(), f"{name} upper {shape}"
            down = O.apply_occluder(img, pts, O.OccluderSpec("bottom", shape, "blue", 0.45), rng(13))
            vis = mouth[inside(mouth)]
            assert (G.sample(down.alpha, vis) > 0.5).mean() >= need, f"{name} bottom {shape}"
            assert (G.sample(down.alpha, eyes) < 0.5).all(), f"{name} bottom {shape}"
        # left/right: the chosen side's cheek is hidden, the other side's eye is not
        left = O.apply_occluder(img, pts, O.OccluderSpec("left_right", "object", "green", 0.4, side="left"), rng(14))
        right_eye = pts[S.EYE_LEFT].mean(axis=0)[None]  # the eye on the image's right
        assert G.sample(left.alpha, right_eye)[0] < 0.5, name
        assert G.sample(left.alpha, pts[[2]])[0] > 0.5 or not inside(pts[[2]])[0], name
        del frame


def test_occluder_size_controls_the_covered_fraction(faces):
    img, pts = faces["frontal_256"]
    for type_ in ("upper", "bottom", "left_right"):
        fractions = []
        for size in (0.2, 0.4, 0.7):
            spec = O.OccluderSpec(type_, "object", "grey", size, side="left" if type_ == "left_right" else "")
            placed = O.apply_occluder(img, pts, spec, rng(5))
            fractions.append(O.covered_fraction(placed.alpha, pts))
        assert fractions[0] < fractions[1] < fractions[2], f"{type_}: {fractions}"
        assert 0.1 < fractions[1] < 0.7, f"{type_}: {fractions}"


def test_prior_fallback_places_a_plausible_face_in_the_box():
    pts = P.prior_points(48, 48, None)
    assert P.implausible(pts, 48, 48) is None
    boxed = P.prior_points(640, 480, (100, 50, 200, 200))
    assert 100 <= boxed[:, 0].min() and boxed[:, 0].max() <= 300
    assert P.implausible(boxed, 640, 480) is None
    shifted = pts.copy()
    shifted[S.MOUTH] -= [0, 40]  # mouth above the eyes: not a face
    assert P.implausible(shifted, 48, 48) is not None


@pytest.mark.parametrize("name", ["COVER_POINTS", "EYE_POINTS", "TEMPLATE_ANCHORS", "FaceFrame", "MaskShape",
                                  "mask_outline", "face_region", "polygon_mask", "sample", "inside", "coverage"])
def test_the_old_geometry_path_still_gives_each_name_with_a_warning(name):
    with pytest.warns(DeprecationWarning, match=rf"synth\.geometry\.{name} moved to fercurate\.synth\.outline\.{name}"):
        old = getattr(importlib.import_module("fercurate.synth.geometry"), name)
    assert old is getattr(G, name)
