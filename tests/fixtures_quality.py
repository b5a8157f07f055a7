"""Helpers for the quality tests: small manifests over real image files, and copies of real images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fercurate.manifest import build_table, write_manifest
from fercurate.schema import CANONICAL_LABELS


@dataclass
class Row:
    rel: str  # path relative to the manifest root
    split: str = "test"
    label_id: int = 0
    votes: Sequence[int] | None = None
    flags: Sequence[str] | None = None


def write_manifest_over(ws: Path, name: str, root: Path, rows: Sequence[Row], dataset: str = "ferplus") -> Path:
    """``ws/manifests/<name>.parquet`` over existing files under ``root``."""
    cols = {
        "sample_id": [f"{name}/{r.rel}" for r in rows],
        "dataset": [dataset] * len(rows),
        "split": [r.split for r in rows],
        "image_path": [r.rel for r in rows],
        "label": [CANONICAL_LABELS[r.label_id] if r.label_id >= 0 else None for r in rows],
        "label_id": [r.label_id for r in rows],
        "label_votes": [list(r.votes) if r.votes is not None else None for r in rows],
        "flags": [list(r.flags) if r.flags else None for r in rows],
    }
    out = ws / "manifests" / f"{name}.parquet"
    write_manifest(build_table(cols), out, dataset=dataset, root=root)
    return out


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_UNCHANGED)


def resize(img: np.ndarray, f: float) -> np.ndarray:
    h, w = img.shape[:2]
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC
    return cv2.resize(img, (round(w * f), round(h * f)), interpolation=interp)


# name -> (how the copy is made from the original's bytes/pixels, expected kind, file suffix)
COPY_KINDS: dict[str, str] = {
    "byte copy": "exact_file",
    "png recompressed": "exact_pixels",
    "tiff": "exact_pixels",
    "rgb png": "exact_pixels",
    "jpeg q60": "near",
    "resize x0.5": "near",
    "resize x2": "near",
    "crop 2px": "near",
    "crop 3px one side": "near",
    "crop top-left 4px + jpeg": "near",
    "brighter": "near",
}


def make_copy(kind: str, src: Path, dst_dir: Path, stem: str) -> Path:
    """Write one copy of ``src`` of the given kind into ``dst_dir``; returns its path."""
    data = src.read_bytes()
    g = cv2.imread(str(src), cv2.IMREAD_GRAYSCALE)
    dst_dir.mkdir(parents=True, exist_ok=True)
    if kind == "byte copy":
        out = dst_dir / f"{stem}.png"
        out.write_bytes(data)
        return out
    if kind == "png recompressed":
        out = dst_dir / f"{stem}.png"
        cv2.imwrite(str(out), g, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        assert out.read_bytes() != data
        return out
    images = {
        "tiff": (g, ".tiff"),
        "rgb png": (cv2.cvtColor(g, cv2.COLOR_GRAY2BGR), ".png"),
        "jpeg q60": (jpeg(g, 60), ".jpg"),
        "resize x0.5": (resize(g, 0.5), ".png"),
        "resize x2": (resize(g, 2.0), ".png"),
        "crop 2px": (g[2:-2, 2:-2], ".png"),
        "crop 3px one side": (g[:, 3:], ".png"),
        "crop top-left 4px + jpeg": (jpeg(g[4:, 4:], 80), ".png"),
        "brighter": (np.clip(g.astype(np.float32) * 1.1 + 12, 0, 255).astype(np.uint8), ".png"),
    }
    img, suffix = images[kind]
    out = dst_dir / f"{stem}{suffix}"
    assert cv2.imwrite(str(out), img)
    return out
