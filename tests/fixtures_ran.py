"""A tiny, learnable face-like dataset for the RAN tests: real PNGs written with OpenCV + a real manifest.

Each class draws a bright shape in its own place on a noisy dark square (class 0: top-left block,
1: top-right block, 2: bottom bar, 6: centre disc), so a network can tell them apart within a few steps.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fercurate.manifest import build_table, write_manifest
from fercurate.schema import CANONICAL_LABELS

# canonical class -> FER+ vote column that carries it (neutral, happiness, surprise, sadness, anger, ...)
_FERPLUS_COLUMN = {0: 0, 1: 1, 2: 3, 3: 2, 4: 6, 5: 5, 6: 4, 7: 7}
TOY_CLASSES = (0, 1, 2, 6)


def toy_image(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    img = rng.integers(0, 60, size=(size, size), dtype=np.uint8)
    j = rng.integers(-2, 3, size=2)
    q = size // 2
    if label == 0:
        cv2.rectangle(img, (2 + j[0], 2 + j[1]), (q - 2 + j[0], q - 2 + j[1]), 230, -1)
    elif label == 1:
        cv2.rectangle(img, (q + 2 + j[0], 2 + j[1]), (size - 3 + j[0], q - 2 + j[1]), 230, -1)
    elif label == 2:
        cv2.rectangle(img, (4 + j[0], size - q // 2 + j[1]), (size - 5 + j[0], size - 3), 230, -1)
    else:
        cv2.circle(img, (q + j[0], q + j[1]), size // 5, 230, -1)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)


def make_toy_manifest(
    workspace: Path,
    *,
    name: str = "toy",
    per_class: dict[str, int] | None = None,
    size: int = 40,
    seed: int = 0,
    unlabelled: int = 0,
    missing: int = 0,
    landmarks: bool = False,
    dataset: str = "ferplus",
) -> Path:
    """Write images under ``workspace/data/<name>`` and ``workspace/manifests/<name>.parquet``.

    ``per_class``: images per class for each split (default train 12, val 4, test 6). ``unlabelled``
    extra train rows get label_id -1; ``missing`` extra test rows point at files that do not exist.
    """
    per_class = per_class or {"train": 12, "val": 4, "test": 6}
    rng = np.random.default_rng(seed)
    root = workspace / "data" / name
    rows: dict[str, list] = {k: [] for k in ("sample_id", "dataset", "split", "image_path", "label", "label_id",
                                             "label_votes", "bbox", "landmarks", "width", "height")}

    def add(split: str, rel: str, label: int | None, write: bool = True) -> None:
        if write:
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), toy_image(label if label is not None else 0, size, rng))
        votes = [0] * 10
        if label is None:
            votes[8] = 10
        else:
            votes[_FERPLUS_COLUMN[label]] = 7
            votes[0 if label else 1] += 3
        rows["sample_id"].append(f"{name}/{rel}")
        rows["dataset"].append(dataset)
        rows["split"].append(split)
        rows["image_path"].append(rel)
        rows["label"].append(None if label is None else CANONICAL_LABELS[label])
        rows["label_id"].append(-1 if label is None else label)
        rows["label_votes"].append(votes)
        rows["bbox"].append({"x": 0.0, "y": 0.0, "w": float(size), "h": float(size)})
        q = size / 4
        pts = [q, q, 3 * q, q, 2 * q, 2 * q, 1.5 * q, 3 * q, 2.5 * q, 3 * q] if landmarks else None
        rows["landmarks"].append(pts)
        rows["width"].append(size)
        rows["height"].append(size)

    for split, n in per_class.items():
        for c in TOY_CLASSES:
            for i in range(n):
                add(split, f"{split}/{c}_{i:03d}.png", c)
    for i in range(unlabelled):
        add("train", f"train/unlabelled_{i:03d}.png", None)
    for i in range(missing):
        add("test", f"test/missing_{i:03d}.png", 0, write=False)
    out = workspace / "manifests" / f"{name}.parquet"
    write_manifest(build_table(rows), out, dataset=dataset, root=root)
    return out
