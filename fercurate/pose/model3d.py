"""The 3D face models the pose estimators fit: a mean MediaPipe mesh (468 vertices) and a dlib 68 model.

The mediapipe wheel here ships neither ``canonical_face_model.obj`` nor the geometry pipeline
metadata, and nothing may be downloaded, so the models are derived from the face mesh network
itself, whose output is 3D (x, y and a relative depth z in the same pixel scale):

1. **Mean shape.** The mesh's 3D output for every FERPlus train/validation face with presence >= 0.9
   (~30k faces, many identities and poses) is aligned by generalised Procrustes analysis (rotation,
   scale, translation); the mean is the shape, the per-vertex residual spread gives fit weights
   (rigid points such as the nose and eye corners count most, the mouth and jaw least).
2. **Frame.** The x axis is the normal of the face's left-right symmetry plane (fitted on mirror
   vertex pairs found by matching the reflected mean to itself); pitch 0 is the average head posture
   of people posing frontally for a camera (JAFFE and CK+); the shape is then made exactly symmetric.
3. **Depth scale.** The network's z is only "roughly" in x's scale, so z is scaled by the factor that
   best explains the 2D landmarks of faces in all poses under rigid perspective projection (a 1-D
   search minimising the median PnP reprojection error over 1,500 FERPlus validation faces).
4. **dlib 68.** Each dlib point of near-frontal faces is located on the fitted mean mesh (barycentric
   coordinates in the projected triangle containing it); the median position is the 68-point model.

The result is an 8 kB ``face_model.npz`` inside the package; ``python -m fercurate.pose.model3d --data
../shared/data`` reproduces it (collecting the network outputs takes ~20 min on 2 cores, the fit ~10).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from fercurate.pose.geometry import euler_from_matrix, procrustes, rot_x, solve_pnp

MODEL_FILE = Path(__file__).with_name("data") / "face_model.npz"


@dataclass(frozen=True)
class FaceModel3D:
    """A rigid 3D face in the head frame (units: inter-ocular distance = 1; x right, y down, z inward)."""

    kind: str  # "mediapipe468" | "dlib68"
    points: np.ndarray  # (N, 3) float64
    weights: np.ndarray  # (N,) fit weights, mean 1
    mirror: np.ndarray  # (N,) index of each point's mirror partner

    def __len__(self) -> int:
        return len(self.points)


@lru_cache(maxsize=None)
def load_model(kind: str = "mediapipe468", path: str | None = None) -> FaceModel3D:
    """The packaged model of ``kind`` ("mediapipe468" or "dlib68")."""
    data = np.load(path or MODEL_FILE)
    if f"{kind}_points" not in data:
        raise ValueError(f"no 3D face model {kind!r} in {path or MODEL_FILE}")
    return FaceModel3D(
        kind,
        data[f"{kind}_points"].astype(np.float64),
        data[f"{kind}_weights"].astype(np.float64),
        data[f"{kind}_mirror"].astype(np.int64),
    )


# --- building ------------------------------------------------------------------------------------


def generalized_procrustes(shapes: np.ndarray, iterations: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Mean shape and per-shape aligned copies (similarity GPA); the mean has unit RMS size."""
    x = shapes - shapes.mean(axis=1, keepdims=True)
    x = x / np.sqrt((x**2).sum(axis=(1, 2), keepdims=True) / x.shape[1])
    mean = np.median(x, axis=0)
    for _ in range(iterations):
        mean = mean - mean.mean(axis=0)
        mean = mean / np.sqrt((mean**2).sum() / len(mean))
        rot, s, t, _ = procrustes(mean, x)
        # Invert each fit: aligned = (x - t) R / s, so every face is expressed in the mean's frame.
        aligned = np.einsum("bnj,bjk->bnk", x - t[:, None], rot) / s[:, None, None]
        new = aligned.mean(axis=0)
        if np.abs(new - mean).max() < 1e-7:
            mean = new
            break
        mean = new
    return mean, aligned


def mirror_pairs(shape: np.ndarray, rounds: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Mirror partner of each vertex and the rotation that makes the symmetry plane x = 0.

    The shape reflected across x = 0 is matched to itself (Hungarian assignment on distances); the
    symmetry plane fitted on those pairs re-orients the shape, and matching is repeated.
    """
    from scipy.optimize import linear_sum_assignment

    c = shape - shape.mean(axis=0)
    total = np.eye(3)
    mirror = np.arange(len(c))
    for _ in range(rounds):
        refl = c * np.array([-1.0, 1.0, 1.0])
        rows, cols = linear_sum_assignment(np.linalg.norm(c[:, None] - refl[None], axis=2))
        mirror = np.empty(len(c), dtype=np.int64)
        mirror[rows] = cols
        rot = symmetry_frame(c, mirror)
        c = c @ rot.T
        total = rot @ total
    return mirror, total


def symmetry_frame(shape: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Rotation taking the shape so that its symmetry plane's normal is the x axis (image right)."""
    diff = shape - shape[mirror]
    pairs = np.abs(diff[:, 0]) > 0  # vertices on the midline pair with themselves
    d = diff[pairs] * np.sign(diff[pairs, 0:1])
    n = d.mean(axis=0)
    n = n / np.linalg.norm(n)
    ex = np.array([1.0, 0.0, 0.0])
    v = np.cross(n, ex)
    s, c = np.linalg.norm(v), float(n @ ex)
    if s < 1e-12:
        return np.eye(3)
    k = v / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * kx @ kx


def symmetrize(shape: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Average the shape with its mirror image (x negated, partners swapped)."""
    refl = shape[mirror] * np.array([-1.0, 1.0, 1.0])
    return (shape + refl) / 2.0


def mean_rotation(rots: np.ndarray) -> np.ndarray:
    """Chordal L2 mean of rotations (B, 3, 3)."""
    u, _, vt = np.linalg.svd(rots.sum(axis=0))
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def depth_scale_error(model: np.ndarray, faces2d: np.ndarray, weights: np.ndarray, scale: float) -> float:
    """Median weighted RMS PnP reprojection error (relative to face size) with z scaled by ``scale``."""
    m = model * np.array([1.0, 1.0, scale])
    errs = []
    for pts in faces2d:
        size = np.ptp(pts[:, 0])
        centre = tuple(pts.mean(axis=0))
        _, _, rms = solve_pnp(m, pts, 8.0 * size, centre, weights=weights, iterations=1)
        errs.append(rms / size)
    return float(np.median(errs))


def triangles() -> np.ndarray:
    """Triangles (T, 3) of the MediaPipe mesh: 3-cliques of its tessellation edges, packaged by
    ``scripts/convert_models.py`` in ``fercurate/faces/models/face_mesh_triangles.npz``."""
    from fercurate.faces.mesh import MODELS

    with np.load(MODELS / "face_mesh_triangles.npz") as data:
        return data["triangles"].astype(np.int64)


def locate_on_mesh(points2d: np.ndarray, mesh2d: np.ndarray, tris: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each 2D point: the mesh triangle that contains it (or the nearest) and barycentric weights."""
    a, b, c = mesh2d[tris[:, 0]], mesh2d[tris[:, 1]], mesh2d[tris[:, 2]]
    v0, v1 = b - a, c - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    den = np.where(np.abs(den) < 1e-12, 1e-12, den)
    out_t = np.empty(len(points2d), dtype=np.int64)
    out_w = np.empty((len(points2d), 3))
    for i, p in enumerate(points2d):
        v2 = p - a
        l1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
        l2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
        l0 = 1 - l1 - l2
        bary = np.stack([l0, l1, l2], axis=1)
        outside = np.clip(-bary, 0, None).sum(axis=1)
        j = int(np.argmin(outside))
        w = np.clip(bary[j], 0, None)
        out_t[i], out_w[i] = j, w / w.sum()
    return out_t, out_w


def _load_collected(path: Path) -> dict[str, np.ndarray]:
    return dict(np.load(path, allow_pickle=False))


def collect(data: Path, out: Path, limit: int | None = None) -> None:
    """Run the mesh (2 passes) and dlib on the build images and save their raw outputs to ``out``."""
    from fercurate.faces import detect, detect_batch
    from fercurate.images import read_image
    from fercurate.progress import progress

    sets = {
        "jaffe": sorted((data / "jaffe").glob("*.tiff")),
        "ckplus": sorted((data / "ckplus48").glob("*/*.png")),
        "fervalid": sorted((data / "ferplus" / "FER2013Valid").glob("*.png")),
        "fertrain": sorted((data / "ferplus" / "FER2013Train").glob("*.png")),
    }
    arrays: dict[str, np.ndarray] = {}
    for name, files in sets.items():
        files = files[:limit] if limit else files
        mesh, score, dl = [], [], []
        for i in progress(range(0, len(files), 256), desc=f"collect {name}", unit="chunk"):
            imgs = [read_image(f, color=False) for f in files[i : i + 256]]
            if name == "jaffe":  # full portraits: find the face first
                boxes = [detect(im, method="dlib").bbox for im in imgs]
            else:  # face crops: the whole image is the face box
                boxes = [(0.0, 0.0, float(im.shape[1]), float(im.shape[0])) for im in imgs]
            for r in detect_batch(imgs, boxes, "mediapipe", refine=False, passes=2):
                mesh.append(np.c_[r.points, r.depth if r.depth is not None else np.zeros(len(r.points))])
                score.append(r.score)
            if name != "fertrain":
                dl.extend(r.points for r in detect_batch(imgs, boxes, "dlib"))
        arrays[f"{name}_mesh"] = np.asarray(mesh, np.float32)
        arrays[f"{name}_score"] = np.asarray(score, np.float32)
        if dl:
            arrays[f"{name}_dlib"] = np.asarray(dl, np.float32)
    np.savez_compressed(out, **arrays)


def build_models(collected: dict[str, np.ndarray], min_score: float = 0.9, seed: int = 0) -> dict[str, np.ndarray]:
    """Steps 1-4 of the module docstring on collected mesh/dlib outputs; returns the npz arrays."""
    rng = np.random.default_rng(seed)
    train = [collected[f"{k}_mesh"][collected[f"{k}_score"] >= min_score] for k in ("fertrain", "fervalid")]
    shapes = np.concatenate(train).astype(np.float64)
    # 1. mean shape by GPA (all 468 vertices, equal weights)
    mean, aligned = generalized_procrustes(shapes)
    # 2a. symmetry: x axis = normal of the symmetry plane
    mirror, frame = mirror_pairs(mean)
    mean = (mean - mean.mean(axis=0)) @ frame.T
    # GPA keeps the images' handedness: vertex 33 (outer corner of the eye on the image's left) is left.
    assert mean[33, 0] < mean[263, 0], "mean shape is not in the image's orientation"
    mean = symmetrize(mean, mirror)
    # 2b. pitch 0 = mean posture of frontal-posed faces (JAFFE, CK+)
    frontal = np.concatenate(
        [collected[f"{k}_mesh"][collected[f"{k}_score"] >= min_score] for k in ("jaffe", "ckplus")]
    ).astype(np.float64)
    # (raw network depth here: the z scale of step 3 does not change rotations about the x axis much,
    # and the frame must be fixed before the depth scale is fitted)
    rots, _, _, _ = procrustes(mean, frontal)
    pitch0 = float(euler_from_matrix(mean_rotation(rots))[1])
    mean = mean @ rot_x(np.deg2rad(-pitch0)).T  # the frontal faces now average pitch 0
    mean = symmetrize(mean, mirror)
    # Units: inter-ocular distance (outer eye corners 33-263) = 1, origin at the centroid.
    mean = mean - mean.mean(axis=0)
    mean = mean / np.linalg.norm(mean[263] - mean[33])
    # weights: inverse residual spread of each vertex after alignment (symmetrised, mean 1)
    rots, s, t, _ = procrustes(mean, shapes)
    back = np.einsum("bnj,bjk->bnk", shapes - t[:, None], rots) / s[:, None, None]
    spread = np.median(np.linalg.norm(back - mean[None], axis=2), axis=0)
    spread = (spread + spread[mirror]) / 2.0
    weights = 1.0 / np.maximum(spread, np.percentile(spread, 5)) ** 2
    weights = weights / weights.mean()
    # 3. depth scale from 2D consistency over faces in all poses
    pool = collected["fervalid_mesh"][collected["fervalid_score"] >= min_score][:, :, :2].astype(np.float64)
    sample = pool[rng.choice(len(pool), size=min(1500, len(pool)), replace=False)]
    grid = np.round(np.arange(0.80, 1.21, 0.05), 2)
    errs = [depth_scale_error(mean, sample, weights, g) for g in grid]
    fine = np.round(np.arange(grid[int(np.argmin(errs))] - 0.04, grid[int(np.argmin(errs))] + 0.041, 0.01), 2)
    ferrs = [depth_scale_error(mean, sample, weights, g) for g in fine]
    zscale = float(fine[int(np.argmin(ferrs))])
    mean = mean * np.array([1.0, 1.0, zscale])
    # 4. dlib 68 from near-frontal faces located on the mean mesh
    d68 = _dlib_model(collected, mean, weights, zscale, min_score)
    mirror68 = np.array(DLIB68_MIRROR, dtype=np.int64)
    d68 = symmetrize(d68, mirror68)
    w68 = _dlib_weights(collected, d68, mirror68, min_score)
    return {
        "mediapipe468_points": mean.astype(np.float32),
        "mediapipe468_weights": weights.astype(np.float32),
        "mediapipe468_mirror": mirror.astype(np.int16),
        "dlib68_points": d68.astype(np.float32),
        "dlib68_weights": w68.astype(np.float32),
        "dlib68_mirror": mirror68.astype(np.int16),
        "zscale": np.float32(zscale),
        "pitch_offset": np.float32(pitch0),
        "zscale_grid": np.array(list(grid) + list(fine), np.float32),
        "zscale_error": np.array(errs + ferrs, np.float32),
    }


# iBUG 68 mirror partners (0-based).
DLIB68_MIRROR: tuple[int, ...] = (
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
    26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
    27, 28, 29, 30, 35, 34, 33, 32, 31,
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,
    64, 63, 62, 61, 60, 67, 66, 65,
)


def _dlib_model(
    collected: dict[str, np.ndarray], mean: np.ndarray, weights: np.ndarray, zscale: float, min_score: float
) -> np.ndarray:
    tris = triangles()
    located = []
    for k in ("jaffe", "ckplus", "fervalid"):
        mesh, score, dl = collected[f"{k}_mesh"], collected[f"{k}_score"], collected[f"{k}_dlib"]
        mesh = mesh * np.array([1.0, 1.0, zscale])
        ok = (score >= min_score) & (np.abs(dl).sum(axis=(1, 2)) > 0)
        rots, s, t, _ = procrustes(mean, mesh[ok].astype(np.float64), weights)
        ypr = euler_from_matrix(rots)
        near_frontal = np.where((np.abs(ypr[:, 0]) < 12) & (np.abs(ypr[:, 1]) < 12))[0]
        idx = np.where(ok)[0][near_frontal]
        for j, i in zip(near_frontal, idx):
            fitted = s[j] * mean @ rots[j].T + t[j]
            tri, bary = locate_on_mesh(dl[i].astype(np.float64), fitted[:, :2], tris)
            located.append(np.einsum("nk,nkd->nd", bary, mean[tris[tri]]))
    return np.median(np.asarray(located), axis=0)


def _dlib_weights(collected: dict[str, np.ndarray], model: np.ndarray, mirror: np.ndarray, min_score: float) -> np.ndarray:
    errs = []
    for k in ("jaffe", "ckplus", "fervalid"):
        dl = collected[f"{k}_dlib"]
        for pts in dl[np.abs(dl).sum(axis=(1, 2)) > 0][:1500].astype(np.float64):
            size = np.ptp(pts[:, 0])
            rot, tv, _ = solve_pnp(model, pts, 8.0 * size, tuple(pts.mean(axis=0)), iterations=1)
            cam = model @ rot.T + tv
            proj = cam[:, :2] / cam[:, 2:3] * 8.0 * size + pts.mean(axis=0)
            errs.append(np.linalg.norm(proj - pts, axis=1) / size)
    spread = np.median(np.asarray(errs), axis=0)
    spread = (spread + spread[mirror]) / 2.0
    w = 1.0 / np.maximum(spread, np.percentile(spread, 5)) ** 2
    return w / w.mean()


def main(argv: list[str] | None = None) -> None:
    """Rebuild ``face_model.npz`` from the real data (collect outputs once, then fit)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("FERCURATE_SHARED_DATA", "../shared/data")))
    parser.add_argument("--collected", type=Path, default=Path("face_model_inputs.npz"))
    parser.add_argument("--out", type=Path, default=MODEL_FILE)
    args = parser.parse_args(argv)
    if not args.collected.exists():
        collect(args.data, args.collected)
    arrays = build_models(_load_collected(args.collected))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out}: z scale {float(arrays['zscale']):.2f}, frontal pitch offset {float(arrays['pitch_offset']):.1f} deg")


if __name__ == "__main__":
    main()
