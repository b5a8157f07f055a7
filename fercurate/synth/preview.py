"""Contact sheets of synthetic variants: parent | variant pairs with captions, for checking by eye.

The parent images are found through the variant manifest's provenance (the parent manifest path
stored in its metadata) or an explicitly given parent manifest. Captions show the variant, the
label and how the face was located (from the ``synth`` layer), so fallbacks are easy to spot.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pyarrow.compute as pc

from fercurate.errors import InputError
from fercurate.images import ImageReadError, read_image, write_image_atomic
from fercurate.layers import read_layer
from fercurate.manifest import Manifest, read_manifest
from fercurate.workspace import layer_path

CAPTION_H = 30
GAP = 4


@dataclass
class SheetResult:
    path: Path
    pairs: int
    missing: int


def _parent_manifest(variants: Manifest, parent: str | os.PathLike | None) -> Manifest:
    if parent is not None:
        return read_manifest(parent)
    info = variants.meta.source.get("parent") or {}
    stored = info.get("path")
    if not stored:
        raise InputError(f"{variants.path}: no parent manifest recorded; pass --parent")
    return read_manifest(stored)


def _fit(img: np.ndarray, tile: int) -> np.ndarray:
    """Scale an image into a tile x tile box (nearest-neighbour when enlarging, so pixels stay honest)."""
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    h, w = img.shape[:2]
    k = tile / max(h, w)
    size = (max(1, round(w * k)), max(1, round(h * k)))
    interp = cv2.INTER_NEAREST if k >= 2 else (cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    small = cv2.resize(img, size, interpolation=interp)
    canvas = np.full((tile, tile, 3), 40, np.uint8)
    y0, x0 = (tile - size[1]) // 2, (tile - size[0]) // 2
    canvas[y0 : y0 + size[1], x0 : x0 + size[0]] = small
    return canvas


def _missing_tile(tile: int, why: str) -> np.ndarray:
    canvas = np.full((tile, tile, 3), 40, np.uint8)
    cv2.line(canvas, (0, 0), (tile - 1, tile - 1), (0, 0, 160), 2)
    cv2.line(canvas, (0, tile - 1), (tile - 1, 0), (0, 0, 160), 2)
    cv2.putText(canvas, why[:18], (4, tile // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def _caption(width: int, lines: list[str]) -> np.ndarray:
    bar = np.full((CAPTION_H, width, 3), 20, np.uint8)
    for i, text in enumerate(lines[:2]):
        cv2.putText(bar, text, (3, 12 + 13 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (235, 235, 235), 1, cv2.LINE_AA)
    return bar


def contact_sheet(
    manifest_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    n: int = 24,
    columns: int = 4,
    tile: int = 128,
    seed: int = 0,
    variant: str | None = None,
    method: str | None = None,
    parent: str | os.PathLike | None = None,
) -> SheetResult:
    """Write a PNG sheet of ``n`` parent | variant pairs (``columns`` pairs per row).

    ``variant`` keeps rows whose variant contains that text; ``method`` rows whose landmarks came
    from that method (e.g. ``prior`` to inspect fallbacks). Rows are a seeded random sample.
    """
    variants = read_manifest(manifest_path)
    t = variants.table
    if t.column("derived_from").null_count == t.num_rows:
        raise InputError(f"{manifest_path}: not a synthetic manifest (no derived_from values)")
    keep = np.ones(t.num_rows, dtype=bool)
    if variant:
        keep &= np.asarray(pc.fill_null(pc.match_substring(t.column("variant"), variant), False))
    methods: dict[str, str] = {}
    lp = layer_path(variants.path, "synth")
    if lp.exists():
        layer, _ = read_layer(lp, "synth")
        methods = dict(zip(layer.column("sample_id").to_pylist(), layer.column("landmark_method").to_pylist()))
    ids = t.column("sample_id").to_pylist()
    if method:
        keep &= np.array([methods.get(s) == method for s in ids])
    rows = np.flatnonzero(keep)
    if not len(rows):
        raise InputError(f"{manifest_path}: no rows match (variant={variant!r}, method={method!r})")
    rng = np.random.default_rng(seed)
    if len(rows) > n:
        rows = np.sort(rng.choice(rows, size=n, replace=False))
    parents = _parent_manifest(variants, parent)
    parent_paths = dict(zip(parents.table.column("sample_id").to_pylist(), parents.image_paths()))
    var_paths = variants.image_paths()
    parent_of = t.column("derived_from").to_pylist()
    labels = t.column("label").cast("string").to_pylist()
    names = t.column("variant").to_pylist()

    tiles = []
    missing = 0
    for i in rows.tolist():
        pair = []
        for path in (parent_paths.get(parent_of[i]), var_paths[i]):
            if path is None:
                pair.append(_missing_tile(tile, "parent not found"))
                missing += 1
                continue
            try:
                pair.append(_fit(read_image(path, color=True), tile))
            except ImageReadError:
                pair.append(_missing_tile(tile, "unreadable"))
                missing += 1
        body = np.hstack([pair[0], np.full((tile, 2, 3), 255, np.uint8), pair[1]])
        how = methods.get(ids[i])
        cap = _caption(body.shape[1], [names[i] or "", f"{labels[i] or '-'}  {('landmarks: ' + how) if how else ''}"])
        tiles.append(np.vstack([body, cap]))
    pair_w = tiles[0].shape[1]
    pair_h = tiles[0].shape[0]
    cols = max(1, min(columns, len(tiles)))
    n_rows = (len(tiles) + cols - 1) // cols
    sheet = np.full((n_rows * (pair_h + GAP) + GAP, cols * (pair_w + GAP) + GAP, 3), 255, np.uint8)
    for k, tl in enumerate(tiles):
        r, c = divmod(k, cols)
        y, x = GAP + r * (pair_h + GAP), GAP + c * (pair_w + GAP)
        sheet[y : y + pair_h, x : x + pair_w] = tl
    out = Path(out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise InputError(f"{out}: contact sheets are written as .png or .jpg")
    write_image_atomic(out, sheet)
    return SheetResult(path=out, pairs=len(tiles), missing=missing)
