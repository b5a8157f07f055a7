"""Small datasets in each of the four native layouts, built from the offline faces in ``demo.faces``.

Each writer produces exactly what the matching ingestor reads (see ``fercurate.ingest.<dataset>``):
AffectNet's CSV lists, FERPlus's ``generate_training_data.py`` folders, RAF-DB basic's partition
list + aligned JPEGs, SFEW 2.0's emotion folders. Every identity gets one expression label, so a
model can learn something in a minute of CPU training; the same identities recur across splits and
datasets on purpose, which is exactly the leakage ``fercurate quality dups`` exists to find. Labels
are assigned, not annotated: the demo shows the pipeline, not expression recognition.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fercurate.demo.faces import BaseFace, Variant, random_variant, render
from fercurate.images import write_image_atomic
from fercurate.schema import CANONICAL_LABELS, FERPLUS_LABELS, FERPLUS_VOTE_COLUMNS, RAFDB_LABELS, SFEW_LABELS


@dataclass(frozen=True)
class DemoImage:
    face: BaseFace
    variant: Variant
    label: str  # canonical label name
    split: str


def identity_label(face: BaseFace, labels: Sequence[str]) -> str:
    """A fixed label per identity (stable across runs and platforms)."""
    h = int(hashlib.sha1(face.name.encode()).hexdigest(), 16)
    return labels[h % len(labels)]


def plan(
    faces: Sequence[BaseFace],
    splits: Sequence[str],
    labels: Sequence[str],
    seed: int,
    turned_fraction: float = 0.35,
) -> list[DemoImage]:
    """One image per (face, split) with a random mild or turned variant."""
    rng = np.random.default_rng(seed)
    out = []
    for face in faces:
        label = identity_label(face, labels)
        for split in splits:
            out.append(DemoImage(face, random_variant(rng, rng.random() < turned_fraction), label, split))
    return out


def _seven() -> list[str]:
    return [c for c in CANONICAL_LABELS if c != "contempt"]


def write_ferplus(root: Path, faces: Sequence[BaseFace], seed: int = 0) -> Path:
    """``FER2013{Train,Valid,Test}/`` with 48x48 grey PNGs and headerless ``label.csv`` (10 votes)."""
    folders = {"train": "FER2013Train", "val": "FER2013Valid", "test": "FER2013Test"}
    images = plan(faces, ["train", "train", "val", "test"], list(CANONICAL_LABELS), seed)
    vote_index = {FERPLUS_LABELS[c]: i for i, c in enumerate(FERPLUS_VOTE_COLUMNS) if FERPLUS_LABELS[c]}
    rng = np.random.default_rng(seed + 1)
    rows: dict[str, list[list[str]]] = {f: [] for f in folders.values()}
    for n, item in enumerate(images):
        folder = folders[item.split]
        name = f"fer{n:07d}.png"
        write_image_atomic(root / folder / name, render(item.face, item.variant, 48, gray=True))
        votes = np.zeros(10, dtype=int)
        votes[vote_index[item.label]] = 7
        for _ in range(3):
            votes[rng.integers(0, 8)] += 1
        rows[folder].append([name, "(0, 0, 48, 48)", *map(str, votes)])
    for folder, lines in rows.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        with open(root / folder / "label.csv", "w", newline="") as fh:
            csv.writer(fh).writerows(lines)
    return root


def write_affectnet(root: Path, faces: Sequence[BaseFace], seed: int = 0) -> Path:
    """``Manually_Annotated_file_lists/{training,validation}.csv`` + images with a face box and 68 landmarks."""
    from fercurate.faces import detect

    codes = {name: code for code, name in enumerate(CANONICAL_LABELS)}
    images = plan(faces, ["train", "test"], list(CANONICAL_LABELS), seed)
    rng = np.random.default_rng(seed + 2)
    header = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
              "facial_landmarks", "expression", "valence", "arousal"]
    lists: dict[str, list[list[str]]] = {"training.csv": [header], "validation.csv": [header]}
    for n, item in enumerate(images):
        side = int(rng.integers(96, 140))
        canvas = np.full((192, 192, 3), int(rng.integers(40, 220)), np.uint8)
        x, y = int(rng.integers(0, 192 - side)), int(rng.integers(0, 192 - side))
        canvas[y : y + side, x : x + side] = render(item.face, item.variant, side)
        rel = f"{n % 7 + 1}/{hashlib.sha1(f'{item.face.name}{n}'.encode()).hexdigest()[:28]}.jpg"
        write_image_atomic(root / "Manually_Annotated_Images" / rel, canvas)
        lm = detect(canvas, (x, y, side, side), method="dlib")
        points = ";".join(f"{v:.2f}" for v in lm.points.reshape(-1)) if lm.ok else ""
        valence, arousal = (f"{v:.3f}" for v in rng.uniform(-1, 1, size=2))
        target = "training.csv" if item.split == "train" else "validation.csv"
        lists[target].append([rel, str(x), str(y), str(side), str(side), points, str(codes[item.label]), valence, arousal])
    (root / "Manually_Annotated_file_lists").mkdir(parents=True, exist_ok=True)
    for name, lines in lists.items():
        with open(root / "Manually_Annotated_file_lists" / name, "w", newline="") as fh:
            csv.writer(fh).writerows(lines)
    return root


def write_rafdb(root: Path, faces: Sequence[BaseFace], seed: int = 0) -> Path:
    """RAF-DB basic: ``EmoLabel/list_patition_label.txt`` + ``Image/aligned/*_aligned.jpg`` (100x100)."""
    codes = {name: code for code, name in RAFDB_LABELS.items()}
    images = plan(faces, ["train", "test"], _seven(), seed + 3)
    counters = {"train": 0, "test": 0}
    lines = []
    for item in images:
        counters[item.split] += 1
        stem = f"{item.split}_{counters[item.split]:05d}" if item.split == "train" else f"test_{counters['test']:04d}"
        write_image_atomic(root / "Image" / "aligned" / f"{stem}_aligned.jpg", render(item.face, item.variant, 100))
        lines.append(f"{stem}.jpg {codes[item.label]}")
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return root


def write_sfew(root: Path, faces: Sequence[BaseFace], seed: int = 0) -> Path:
    """SFEW 2.0: ``Train/<Emotion>/``, ``Val/<Emotion>/`` and an unlabelled ``Test/`` (PNG frames)."""
    folder_of = {canon: folder for folder, canon in SFEW_LABELS.items()}
    images = plan(faces, ["train", "val", "test"], _seven(), seed + 4)
    for n, item in enumerate(images):
        img = render(item.face, item.variant, 128)
        if item.split == "test":
            path = root / "Test" / f"test_{n:04d}.png"
        else:
            split_dir = "Train" if item.split == "train" else "Val"
            path = root / split_dir / folder_of[item.label] / f"{item.face.name}_{n:04d}.png"
        write_image_atomic(path, cv2.resize(img, (128, 128)))
    return root
