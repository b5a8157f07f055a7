"""Every face in a picture: BlazeFace and dlib's HOG detector pooled, duplicates merged, weak hits dropped.

:func:`fercurate.faces.detection.detect_faces` answers "where is *the* face" (dlib only runs when
BlazeFace finds nothing). Masking a group photo needs every face, and neither detector finds them all
alone: on ``insightface_t1.jpg`` (6 people) BlazeFace's short-range model finds 3 and dlib 6; on
``pyfeat_multi_face.jpg`` (5 people) BlazeFace finds 5 and dlib 4; next to one large face BlazeFace
misses faces a third its size that dlib finds. So both run, unless the picture is a close-up of one
face (one confident BlazeFace face whose box covers at least :data:`CLOSE_UP` of the picture's area:
a portrait or a dataset crop, where there is little room for a second face and dlib's HOG pass would
cost several times the rest of the work).

On a large picture (longer side at least :data:`LARGE_PICTURE`) a small-face pass follows
(:func:`fercurate.faces.detection.detect_small_faces`: BlazeFace on overlapping tiles at three scales),
since on the whole frame BlazeFace sees nothing under about an eighth of it. Tiles give the detector
many more chances to fire on a hand, a glass or a picture on the wall, so a face that only this pass
found counts only when the face mesh, run on its box as the masks will run it, says a face is there
(:data:`SMALL_FACE_PRESENCE`); such faces are marked ``mediapipe-tiles``.

Boxes are returned in the dataset face-box convention that
:func:`fercurate.faces.landmarks.detect_batch` expects for a given ``bbox`` (about the whole face,
forehead to chin), so each one can be passed straight on as that face's box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fercurate.faces.alignment import Bbox

# A detection below this score counts only when the other detector also found that face: BlazeFace
# fires at 0.57 on the ear of prnet_1.jpg; true faces in faces/ score >= 0.69 (BlazeFace) or
# >= 0.70 (dlib).
MIN_SCORE = 0.6
# One confident BlazeFace face covering at least this share of the picture's area: no dlib pass.
CLOSE_UP = 0.15
CONFIDENT = 0.7
# Two boxes are the same face when this share of the smaller one lies inside the other.
SAME_FACE = 0.5
# The small-face pass runs on pictures whose longer side is at least 5 BlazeFace inputs (640 px): FERPlus
# crops, dataset face crops and portraits under that cost nothing more.
LARGE_PICTURE = 640
# Face-mesh presence (468-point model, one pass on the face box) a face found only by the small-face pass
# needs: the mesh's own cut (landmarks.MIN_MESH_SCORE), below which it would place no landmarks anyway.
# Measured by benchmarks/small_faces.py: the 13 tile hits off the 28 faces of shared/data/faces score at
# most 0.033 (57 hits at BlazeFace score >= 0.3: at most 0.014, bar one on a known face's chin, see
# NEAR_KNOWN); 94.8% of 500 FERPlus validation faces and all 213 JAFFE faces score >= 0.5 (93.2% and
# 100% >= 0.9), so any threshold in 0.05..0.9 separates them; 0.5 keeps the most faces the mesh can place.
SMALL_FACE_PRESENCE = 0.5
SMALL_FACES = "mediapipe-tiles"
# A tile hit covering more than this share of a known face (or of itself, if smaller) is a part of that
# face, never a second one: the mesh, handed a box on a face's chin and shirt (insightface_t1.jpg, a tile
# hit at BlazeFace score 0.3, a third of it on a known face), draws a face there at presence 0.999.
NEAR_KNOWN = 0.25
# BlazeFace's box is tight (brows to mouth); landmarks.detect_batch crops 1.3x a given box but 1.5x
# its own detections, so a BlazeFace box is widened by 1.5 / 1.3 to give the mesh the crop it expects.
MEDIAPIPE_TO_FACE = 1.5 / 1.3
# dlib's HOG box inside a whole-face box, as fractions of the whole-face box (the inverse of
# fercurate.faces.dlib68.HOG_FROM_TIGHT: median over 1,500 FERPlus validation faces).
HOG_IN_FACE = (0.08, 0.15, 0.78)


@dataclass(frozen=True)
class Face:
    """One face in a picture: its box (x, y, w, h, whole-face convention), who found it, how sure."""

    box: Bbox
    method: str  # "mediapipe", "dlib", "mediapipe+dlib" or "mediapipe-tiles" (small-face pass)
    score: float

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])


def _face_box(box: Bbox, method: str) -> Bbox:
    x, y, w, h = (float(v) for v in box)
    if method == "dlib":
        dx, dy, dw = HOG_IN_FACE
        side = max(w, h) / dw
        return (x - dx * side, y - dy * side, side, side)
    cx, cy = x + w / 2, y + h / 2
    w, h = w * MEDIAPIPE_TO_FACE, h * MEDIAPIPE_TO_FACE
    return (cx - w / 2, cy - h / 2, w, h)


def _overlap(a: Bbox, b: Bbox) -> float:
    """Share of the smaller box that lies inside the other."""
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    smaller = min(a[2] * a[3], b[2] * b[3])
    return iw * ih / smaller if smaller > 0 else 0.0


def _merge(merged: list[list], box: Bbox, method: str, score: float) -> None:
    """Add a detection to ``merged`` ([box, methods, best score] per face): a new face, or another
    method's vote for a face already there."""
    same = next((m for m in merged if _overlap(m[0], box) >= SAME_FACE), None)
    if same is None:
        merged.append([box, [method], score])
    elif method not in same[1]:
        same[1].append(method)
        same[2] = max(same[2], score)


def _counts(face: list) -> bool:
    """A confident detection, one two methods agree on, or a small face the mesh confirmed."""
    _, methods, score = face
    return score >= MIN_SCORE or len(methods) > 1 or methods == [SMALL_FACES]


def find_faces(image: np.ndarray) -> list[Face]:
    """All faces in a BGR/gray picture, left to right (then top to bottom); [] when there is none."""
    from fercurate.faces.detection import detect_faces

    h, w = image.shape[:2]
    first = detect_faces(image, "mediapipe")  # dlib's result when BlazeFace finds nothing
    found = [(_face_box(f.bbox, f.method), f.method, f.score) for f in first]
    close_up = (
        len(first) == 1
        and first[0].method == "mediapipe"
        and first[0].score >= CONFIDENT
        and first[0].area >= CLOSE_UP * h * w
    )
    if first and not close_up and all(f.method == "mediapipe" for f in first):
        found += [(_face_box(f.bbox, f.method), f.method, f.score) for f in detect_faces(image, "dlib")]
    merged: list[list] = []  # [box, methods, best score]
    for box, method, score in sorted(found, key=lambda t: (t[1] != "mediapipe", -t[2])):
        _merge(merged, box, method, score)
    if not close_up and max(h, w) >= LARGE_PICTURE:
        # faces only the tiles find (a weak whole-frame hit the tiles and the mesh confirm counts too)
        for box, method, score in small_faces(image, [m[0] for m in merged if _counts(m)]):
            _merge(merged, box, method, score)
    # boxes rounded to 1/100 px: BlazeFace's low float bits vary with what the process ran before, and a
    # landmark model's answer on a hard face (a near profile) can flip on a 1e-6 px change of its box
    faces = [
        Face(tuple(round(float(v), 2) for v in box), "+".join(methods), float(score))  # type: ignore[arg-type]
        for box, methods, score in merged
        if _counts([box, methods, score])
    ]
    return sorted(faces, key=lambda f: (round(f.box[0] + f.box[2] / 2), round(f.box[1] + f.box[3] / 2)))


def small_faces(image: np.ndarray, known: list[Bbox]) -> list[tuple[Bbox, str, float]]:
    """Faces that only the tiled small-face pass finds (none of ``known``), kept when the mesh agrees.

    A tile hit that overlaps a known face (:data:`NEAR_KNOWN`) is a part of it, not another face. The
    mesh must see a face (:data:`SMALL_FACE_PRESENCE`) and that face must be this one: its points'
    centre inside the tile box, and the points' box off the ``known`` faces. Returns (whole-face box,
    ``"mediapipe-tiles"``, BlazeFace score) per face kept.
    """
    from fercurate.faces.detection import detect_small_faces
    from fercurate.faces.landmarks import detect_batch

    boxes: list[tuple[Bbox, float]] = []
    for face in sorted(detect_small_faces(image), key=lambda f: -f.score):
        box = _face_box(face.bbox, "mediapipe")
        if not any(_overlap(box, other) >= NEAR_KNOWN for other in known) and not any(
            _overlap(box, other) >= SAME_FACE for other, _ in boxes
        ):
            boxes.append((box, face.score))
    if not boxes:
        return []
    marks = detect_batch([image] * len(boxes), [b for b, _ in boxes], "mediapipe", refine=False, passes=1)
    kept: list[tuple[Bbox, str, float]] = []
    for (box, score), mark in zip(boxes, marks):
        if mark.score < SMALL_FACE_PRESENCE:
            continue
        lo, hi = mark.points.min(axis=0), mark.points.max(axis=0)
        seen = (float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]))
        cx, cy = seen[0] + seen[2] / 2, seen[1] + seen[3] / 2
        inside = box[0] <= cx <= box[0] + box[2] and box[1] <= cy <= box[1] + box[3]
        if inside and not any(_overlap(seen, other) >= NEAR_KNOWN for other in [*known, *(b for b, _, _ in kept)]):
            kept.append((box, SMALL_FACES, score))
    return kept


def largest(faces: list[Face]) -> list[Face]:
    """The largest face only (ties: the first), as a list."""
    return [max(faces, key=lambda f: f.area)] if faces else []
