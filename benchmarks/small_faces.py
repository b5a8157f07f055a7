"""The small-face pass's check, measured: face-mesh presence on true faces and on what the tiles find.

Negatives: every hit of :func:`fercurate.faces.detection.detect_small_faces` on ``shared/data/faces``
that is not one of the faces there (a face found by the whole-frame detectors, or the one face of
pyfeat_BWPictureHuman.jpg, which no whole-frame detector finds). Positives: FERPlus validation faces
(the whole 48-px crop as the box) and JAFFE (BlazeFace's box): the faces the mesh must keep accepting.
Prints, for each threshold, the share of each set at or above it (the basis of
``fercurate.faces.multi.SMALL_FACE_PRESENCE``). ``--detector-score 0.3`` lowers BlazeFace's own
threshold for the tiles to collect more (weaker) negatives. ``--pasted N`` also pastes N JAFFE faces,
100 px wide and rolled 0 / 45 / 60 degrees, into a 2000x1500 gradient and counts how many
:func:`fercurate.faces.multi.find_faces` finds, and by which method.

    python benchmarks/small_faces.py --data ../shared/data --ferplus 500 --detector-score 0.3 --pasted 30
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from fercurate.faces import detection
from fercurate.faces.detection import detect_faces, detect_small_faces
from fercurate.faces.landmarks import detect_batch
from fercurate.faces.multi import SAME_FACE, _face_box, _overlap, find_faces, small_faces

# The one face in pyfeat_BWPictureHuman.jpg (x, y, w, h; read off the picture): not a negative.
BW_FACE = (830.0, 400.0, 220.0, 240.0)


def presence(images: list[np.ndarray], boxes: list) -> np.ndarray:
    marks = detect_batch(images, boxes, "mediapipe", refine=False, passes=1)
    return np.array([m.score for m in marks])


def read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise SystemExit(f"cannot decode {path}")
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--ferplus", type=int, default=500, help="FERPlus validation faces (first N by name)")
    ap.add_argument("--detector-score", type=float, default=detection.MIN_SCORE,
                    help="BlazeFace score threshold for the tiles' negatives (default: the detector's own)")
    ap.add_argument("--pasted", type=int, default=0, help="JAFFE faces pasted small into a large canvas (0: skip)")
    args = ap.parse_args()
    default_score = detection.MIN_SCORE
    detection.MIN_SCORE = args.detector_score
    neg, neg_names, bw = [], [], []
    for path in sorted((args.data / "faces").glob("*.*")):
        if path.suffix.lower() not in {".jpg", ".png"}:
            continue
        img = read(path)
        known = [f.box for f in find_faces(img) if f.method != "mediapipe-tiles"]
        if path.name == "pyfeat_BWPictureHuman.jpg":
            known.append(BW_FACE)
        hits = [_face_box(f.bbox, "mediapipe") for f in detect_small_faces(img)]
        if path.name == "pyfeat_BWPictureHuman.jpg":
            bw += [h for h in hits if _overlap(h, BW_FACE) >= SAME_FACE]
        hits = [h for h in hits if not any(_overlap(h, k) >= SAME_FACE for k in known)]
        if hits:
            neg.append(presence([img] * len(hits), hits))
            neg_names += [f"{path.name} {tuple(round(v) for v in h)}" for h in hits]
            kept = small_faces(img, known)
            print(f"{path.name}: {len(hits)} tile hits off its faces, {len(kept)} kept by small_faces' full check")
        if bw and path.name == "pyfeat_BWPictureHuman.jpg":
            bw_scores = presence([img] * len(bw), bw)
    neg_scores = np.concatenate(neg) if neg else np.zeros(0)
    detection.MIN_SCORE = default_score
    fer = sorted((args.data / "ferplus" / "FER2013Valid").glob("*.png"))[: args.ferplus]
    fer_imgs = [read(p) for p in fer]
    fer_scores = presence(fer_imgs, [(0.0, 0.0, float(i.shape[1]), float(i.shape[0])) for i in fer_imgs])
    jaffe_imgs, jaffe_boxes = [], []
    for p in sorted((args.data / "jaffe").glob("*.tiff")):
        img = read(p)
        faces = detect_faces(img)
        if faces:
            jaffe_imgs.append(img)
            jaffe_boxes.append(_face_box(faces[0].bbox, "mediapipe"))
    jaffe_scores = presence(jaffe_imgs, jaffe_boxes)
    print(f"negatives: {len(neg_scores)} small-face-pass hits off the faces of {args.data / 'faces'}")
    for name, s in sorted(zip(neg_names, neg_scores), key=lambda t: -t[1]):
        print(f"   {s:.3f}  {name}")
    print(f"the BWPictureHuman face, as the tiles find it: {', '.join(f'{s:.3f}' for s in bw_scores) if bw else 'not found'}")
    print(f"positives: {len(fer_scores)} FERPlus validation faces, {len(jaffe_scores)} JAFFE faces")
    print("threshold  negatives kept  FERPlus val kept  JAFFE kept")
    for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        print(f"  {t:.1f}      {np.mean(neg_scores >= t):6.1%}        {np.mean(fer_scores >= t):6.1%}          {np.mean(jaffe_scores >= t):6.1%}")
    print(f"highest negative {neg_scores.max():.3f}; FERPlus val median {np.median(fer_scores):.3f}, JAFFE min {jaffe_scores.min():.3f}")
    if args.pasted:
        pasted(jaffe_imgs, jaffe_boxes, args.pasted)
    return 0


def pasted(images: list[np.ndarray], boxes: list, n: int) -> None:
    """JAFFE faces pasted 100 px wide (about 1/20 of the frame) into a 2000x1500 gradient, rolled."""
    ramp = np.linspace(50, 210, 2000, dtype=np.uint8)
    canvas = np.dstack([np.tile(ramp, (1500, 1))] * 3)
    step = max(1, len(images) // n)
    for roll in (0, 45, 60):
        methods: dict[str, int] = {}
        found = extra = 0
        for img, (x, y, w, h) in list(zip(images, boxes))[::step][:n]:
            side = round(max(w, h) * 1.2)
            cx, cy = x + w / 2, y + h / 2
            crop = cv2.warpAffine(img, cv2.getRotationMatrix2D((cx, cy), roll, 1.0), img.shape[1::-1],
                                  borderMode=cv2.BORDER_REFLECT)
            x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
            face = cv2.resize(crop[y0 : y0 + side, x0 : x0 + side], (100, 100), interpolation=cv2.INTER_AREA)
            pic = canvas.copy()
            pic[700:800, 1300:1400] = face if face.ndim == 3 else face[..., None]
            faces = find_faces(pic)
            hit = [f for f in faces if _overlap(f.box, (1300.0, 700.0, 100.0, 100.0)) > 0.5]
            found += bool(hit)
            extra += len(faces) - len(hit)
            for f in hit:
                methods[f.method] = methods.get(f.method, 0) + 1
        total = len(list(zip(images, boxes))[::step][:n])
        print(f"pasted, roll {roll:2d} deg: {found}/{total} found, {extra} false faces; by {methods}")


if __name__ == "__main__":
    raise SystemExit(main())
