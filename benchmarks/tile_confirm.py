"""Can a tile-only face be confirmed without the face mesh? Detector scores on what the tiles find, measured.

The small-face pass (:func:`fercurate.faces.detection.detect_small_faces`) keeps a face only the tiles
find when the face mesh confirms it. The black-and-white photo's turned face gets mesh presence 0.000,
so this measures three other ways to confirm a tile hit, each as a score per hit:

* ``tile``: BlazeFace's own score on the tile (the best over the tile scales);
* ``scales``: how many of the three tile scales (1/2, 1/3, 1/4 of the frame) hit it at >= 0.5;
* ``crop-short`` / ``crop-full``: the short- and full-range models re-run on a square crop twice the hit's
  face box, area-shrunk to each model's input (best detection centred on the crop).

Negatives: every tile hit (BlazeFace threshold lowered to ``--detector-score``) that is not a face, on
the large pictures of ``shared/data/faces`` (faces: those :func:`fercurate.faces.multi.find_faces` finds,
plus the black-and-white photo's face) and on canvases built here at 1024, 2000 and 3200 px wide: a drawn
scene (sun, hills, discs, rectangles), smooth noise with grain, a checkerboard, the landscape upscaled
2x and 3x, and drawn blobs (ellipses with two dark dots: cartoon faces, listed apart). Positives: JAFFE
faces (every ``--jaffe-step``-th) and FERPlus validation faces pasted ``--pasted-px`` (100) wide into a
2000x1500 gradient, rolled 0 / 45 / 60 degrees. For each score: the highest negative, the
black-and-white face's value, and the share of positives above that highest negative.

``--placement`` also measures how well a mask placed from BlazeFace's keypoints alone would sit, were
such a face confirmed: the mean 68-point face fitted by a similarity transform to the keypoints' eyes,
nose tip and mouth centre, its mask outline judged by dlib's 68 points (nose, mouth and chin inside,
eyes outside, as ``benchmarks/synth_masks.py`` judges) next to the face mesh's placement, on every
JAFFE face upright and rolled 30 degrees.

    python benchmarks/tile_confirm.py --data ../shared/data --detector-score 0.3 --jaffe-step 7 --ferplus 30
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from small_faces import BW_FACE, read

from fercurate.faces import detection
from fercurate.faces.alignment import Bbox, to_rgb
from fercurate.faces.detection import (
    TILE_DIVISIONS,
    _blazeface,
    detect_faces,
    detect_small_faces,
)
from fercurate.faces.multi import SAME_FACE, _face_box, _overlap, find_faces
from fercurate.synth import outline as G
from fercurate.synth import placement as P
from fercurate.synth import shapes as S

SCORES = ("tile", "scales", "crop-short", "crop-full")


def crop_scores(image: np.ndarray, box: Bbox) -> tuple[float, float]:
    """Short- and full-range BlazeFace on a square crop twice the face box (best detection near its centre)."""
    x, y, w, h = box
    side = round(2.0 * max(w, h))
    x0, y0 = round(x + w / 2 - side / 2), round(y + h / 2 - side / 2)
    pad = max(0, -x0, -y0, x0 + side - image.shape[1], y0 + side - image.shape[0])
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT)
    crop = to_rgb(padded[y0 + pad : y0 + pad + side, x0 + pad : x0 + pad + side])
    out = []
    for full_range in (False, True):
        model = _blazeface(full_range)
        size = model.config.size
        best = 0.0
        for (a0, b0, a1, b1), score, _ in model(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)):
            if abs((a0 + a1) / 2 / size - 0.5) < 0.25 and abs((b0 + b1) / 2 / size - 0.5) < 0.25:
                best = max(best, score)
        out.append(best)
    return out[0], out[1]


def tile_hits(image: np.ndarray) -> list[tuple[Bbox, dict[str, float]]]:
    """Each tile hit (merged over scales; whole-face box) with its four scores."""
    per = {d: [(_face_box(f.bbox, "mediapipe"), f.score) for f in detect_small_faces(image, (d,))] for d in TILE_DIVISIONS}
    merged: list[tuple[Bbox, float]] = []
    for box, score in sorted((hit for hits in per.values() for hit in hits), key=lambda t: -t[1]):
        if not any(_overlap(m, box) >= SAME_FACE for m, _ in merged):
            merged.append((box, score))
    out = []
    keep = detection.MIN_SCORE
    for box, score in merged:
        at = [max((s for b, s in per[d] if _overlap(box, b) >= SAME_FACE), default=0.0) for d in TILE_DIVISIONS]
        detection.MIN_SCORE = 0.05  # the re-scores are read however low they are
        short, full = crop_scores(image, box)
        detection.MIN_SCORE = keep
        out.append((box, {"tile": score, "scales": float(sum(s >= 0.5 for s in at)), "crop-short": short, "crop-full": full}))
    return out


def canvases(rng: np.random.Generator, landscape: np.ndarray | None):
    """(name, kind, picture) for the built negatives; kind "blobs" for the cartoon faces."""
    for h, w in [(768, 1024), (1500, 2000), (2400, 3200)]:
        ramp = np.linspace(50, 210, w, dtype=np.uint8)
        scene = np.dstack([np.tile(ramp, (h, 1))] * 3)
        cv2.circle(scene, (w * 3 // 4, h // 5), h // 16, (120, 220, 255), -1, cv2.LINE_AA)
        hills = np.array([[0, h * 2 // 3], [w // 4, h // 3], [w // 2, h * 3 // 5], [w, h // 3], [w, h], [0, h]])
        cv2.fillPoly(scene, [hills], (70, 120, 80), cv2.LINE_AA)
        for k in range(12):
            cv2.circle(scene, (w // 12 * k + w // 24, h * 4 // 5), h // 50 + 3 * k, (40 + 15 * k, 90, 200 - 10 * k), -1, cv2.LINE_AA)
            cv2.rectangle(scene, (w // 13 * k + 20, h // 8), (w // 13 * k + 20 + w // 30, h // 8 + h // 25 + 10 * k), (200, 200 - 12 * k, 90), -1)
        yield f"scene{w}", "built", scene
        smooth = cv2.resize(rng.random((h // 32, w // 32)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        noise = np.clip(smooth * 200 + rng.normal(0, 20, (h, w)), 0, 255).astype(np.uint8)
        yield f"noise{w}", "built", cv2.cvtColor(noise, cv2.COLOR_GRAY2BGR)
        yy, xx = np.mgrid[0:h, 0:w]
        checker = ((xx // (w // 23) + yy // (h // 17)) % 2 * 180 + 40).astype(np.uint8)
        yield f"checker{w}", "built", cv2.cvtColor(checker, cv2.COLOR_GRAY2BGR)
        blobs = np.full((h, w, 3), 128, np.uint8)
        for _ in range(60):
            cx, cy, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(h // 40, h // 8))
            colour = tuple(int(v) for v in rng.integers(0, 255, 3))
            cv2.ellipse(blobs, (cx, cy), (r, int(r * 1.3)), float(rng.integers(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
            for dx in (-r // 3, r // 3):
                cv2.circle(blobs, (cx + dx, cy - r // 4), max(2, r // 8), (20, 20, 20), -1)
        yield f"blobs{w}", "blobs", blobs
    if landscape is not None:
        for f in (2, 3):
            yield f"landscape x{f}", "built", cv2.resize(landscape, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)


def pasted(images: list[np.ndarray], boxes: list[Bbox], px: int) -> list[dict[str, float]]:
    """Scores of the tile hit on each face pasted ``px`` wide into a 2000x1500 gradient (0 when missed)."""
    ramp = np.linspace(50, 210, 2000, dtype=np.uint8)
    canvas = np.dstack([np.tile(ramp, (1500, 1))] * 3)
    target = (1300.0, 700.0, float(px), float(px))
    out = []
    for img, (x, y, w, h) in zip(images, boxes):
        for roll in (0, 45, 60):
            side = round(max(w, h) * 1.2)
            cx, cy = x + w / 2, y + h / 2
            turned = cv2.warpAffine(img, cv2.getRotationMatrix2D((cx, cy), roll, 1.0), img.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
            x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
            face = cv2.resize(turned[y0 : y0 + side, x0 : x0 + side], (px, px), interpolation=cv2.INTER_AREA)
            pic = canvas.copy()
            pic[700 : 700 + px, 1300 : 1300 + px] = face if face.ndim == 3 else face[..., None]
            hits = [s for b, s in tile_hits(pic) if _overlap(b, target) > 0.5]
            out.append(max(hits, key=lambda s: s["tile"]) if hits else dict.fromkeys(SCORES, 0.0))
    return out


def keypoint_shape(keypoints: np.ndarray) -> np.ndarray:
    """68 points: the mean face fitted (similarity) to BlazeFace's eyes, nose tip and mouth centre."""
    mean = S.mean_shape()
    src = np.stack([mean[S.EYE_RIGHT].mean(0), mean[S.EYE_LEFT].mean(0), mean[S.NOSE_TIP], mean[S.MOUTH_OUTER].mean(0)])
    return S.apply_affine(S.similarity(src, keypoints[:4]), mean)


def placement(data: Path) -> None:
    """Keypoint placement vs the mesh's on JAFFE, both judged by dlib's 68 points."""
    from fercurate.faces import landmarks as lm

    counts: dict[tuple[int, str], list[int]] = {}
    for path in sorted((data / "jaffe").glob("*.tiff")):
        upright = read(path)
        h, w = upright.shape[:2]
        for roll in (0, 30):
            rot = cv2.getRotationMatrix2D((w / 2, h / 2), roll, 1.0)
            img = cv2.warpAffine(upright, rot, (w, h), borderMode=cv2.BORDER_REFLECT)
            faces = detect_faces(img)
            if not faces or faces[0].keypoints is None:
                continue
            box = _face_box(faces[0].bbox, "mediapipe")
            judge = lm.detect(img, box, "dlib")
            if judge.failure is not None:
                continue
            ref = P.to68(judge)
            mesh = P.locate_batch([img], [box], methods=("mediapipe",), fallback=False, detected=[True])[0]
            placed = {"keypoints": keypoint_shape(faces[0].keypoints), "mesh": mesh.points if mesh.ok else None}
            for name, pts in placed.items():
                c = counts.setdefault((roll, name), [0, 0, 0, 0])
                c[0] += 1
                if pts is None:
                    continue
                poly = G.mask_outline(pts)
                cover = bool(G.inside(poly, ref[G.COVER_POINTS]).all())
                eyes_out = not G.inside(poly, ref[G.EYE_POINTS]).any()
                c[1], c[2], c[3] = c[1] + cover, c[2] + eyes_out, c[3] + (cover and eyes_out)
    print("\nplacement on JAFFE, judged by dlib's 68 points (a face the placement could not place counts as a miss):")
    for (roll, name), (n, cover, eyes, both) in sorted(counts.items()):
        print(f"  roll {roll:2d}, placed by {name:9s}: {n} faces, nose/mouth/chin inside {cover / n:.1%}, "
              f"eyes outside {eyes / n:.1%}, both {both / n:.1%}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--detector-score", type=float, default=0.3, help="BlazeFace threshold for the tiles' hits")
    ap.add_argument("--jaffe-step", type=int, default=7, help="every Nth JAFFE face is pasted (3 rolls each)")
    ap.add_argument("--ferplus", type=int, default=30, help="FERPlus validation faces pasted (every 10th of the first 10N)")
    ap.add_argument("--pasted-px", type=int, default=100, help="width of the pasted faces (the BW face is 1/12 of its frame: 170)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--placement", action="store_true", help="also judge keypoint placement on JAFFE")
    args = ap.parse_args()
    default = detection.MIN_SCORE
    negatives: dict[str, list[tuple[str, dict[str, float]]]] = {"photos": [], "built": [], "blobs": []}
    bw: dict[str, float] | None = None
    for path in sorted((args.data / "faces").glob("*.*")):
        if path.suffix.lower() not in {".jpg", ".png"}:
            continue
        img = read(path)
        if max(img.shape[:2]) < 640:
            continue
        detection.MIN_SCORE = default
        known = [f.box for f in find_faces(img)]
        detection.MIN_SCORE = args.detector_score
        for box, scores in tile_hits(img):
            if path.name == "pyfeat_BWPictureHuman.jpg" and _overlap(box, BW_FACE) >= SAME_FACE:
                bw = scores if bw is None or scores["tile"] > bw["tile"] else bw
            elif not any(_overlap(box, k) >= SAME_FACE for k in known):
                negatives["photos"].append((path.name, scores))
    landscape = args.data / "faces" / "pyfeat_free-mountain-vector-01.jpg"
    for name, kind, img in canvases(np.random.default_rng(args.seed), read(landscape) if landscape.exists() else None):
        negatives[kind] += [(name, scores) for _, scores in tile_hits(img)]
    detection.MIN_SCORE = default
    jaffe, jaffe_boxes = [], []
    for p in sorted((args.data / "jaffe").glob("*.tiff"))[:: args.jaffe_step]:
        img = read(p)
        if faces := detect_faces(img):
            jaffe.append(img)
            jaffe_boxes.append(_face_box(faces[0].bbox, "mediapipe"))
    fer = [read(p) for p in sorted((args.data / "ferplus" / "FER2013Valid").glob("*.png"))[: 10 * args.ferplus : 10]]
    detection.MIN_SCORE = args.detector_score
    positives = {"JAFFE": pasted(jaffe, jaffe_boxes, args.pasted_px),
                 "FERPlus val": pasted(fer, [(0.0, 0.0, 48.0, 48.0)] * len(fer), args.pasted_px)}
    detection.MIN_SCORE = default
    print(f"negatives (tile hits at BlazeFace >= {args.detector_score}): " + ", ".join(f"{k} {len(v)}" for k, v in negatives.items()))
    print(f"positives (pasted {args.pasted_px} px, rolls 0/45/60): " + ", ".join(f"{k} {len(v)}" for k, v in positives.items()))
    print("the black-and-white photo's face: " + (", ".join(f"{k} {v:.3f}" for k, v in bw.items()) if bw else "not found"))
    for score in SCORES:
        print(f"\n{score}:")
        for kind, rows in negatives.items():
            if rows:
                name, top = max(rows, key=lambda t: t[1][score])
                print(f"  highest negative, {kind:6s}: {top[score]:.3f} ({name})")
        for kind, rows in positives.items():
            vals = np.array([r[score] for r in rows])
            print(f"  positives {kind:11s}: min {vals.min():.3f}, median {np.median(vals):.3f}, max {vals.max():.3f}")
        for kinds in (("photos", "built"), ("photos", "built", "blobs")):
            top = max((r[1][score] for k in kinds for r in negatives[k]), default=0.0)
            above = {k: float(np.mean([r[score] > top for r in rows])) for k, rows in positives.items()}
            bw_txt = "n/a" if bw is None else ("above" if bw[score] > top else "NOT above")
            print(f"  over negatives {'+'.join(kinds)} (max {top:.3f}): BW face {bw_txt}; positives above: "
                  + ", ".join(f"{k} {v:.1%}" for k, v in above.items()))
    if args.placement:
        placement(args.data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
