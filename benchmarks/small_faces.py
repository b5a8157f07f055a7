"""The small-face pass's check, measured: face-mesh presence on true faces and on what the tiles find.

Negatives: every hit of :func:`fercurate.faces.detection.detect_small_faces` on ``shared/data/faces``
that is not one of the faces there (a face found by the whole-frame detectors, or the one face of
pyfeat_BWPictureHuman.jpg, which no whole-frame detector finds). Positives: FERPlus validation faces
(the whole 48-px crop as the box) and JAFFE (BlazeFace's box): the faces the mesh must keep accepting.
Prints, for each threshold, the share of each set at or above it (the basis of
``fercurate.faces.multi.SMALL_FACE_PRESENCE``).

    python benchmarks/small_faces.py --data ../shared/data --ferplus 500
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from fercurate.faces.detection import detect_faces, detect_small_faces
from fercurate.faces.landmarks import detect_batch
from fercurate.faces.multi import SAME_FACE, _face_box, _overlap, find_faces

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
    args = ap.parse_args()
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
        if bw and path.name == "pyfeat_BWPictureHuman.jpg":
            bw_scores = presence([img] * len(bw), bw)
    neg_scores = np.concatenate(neg) if neg else np.zeros(0)
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
