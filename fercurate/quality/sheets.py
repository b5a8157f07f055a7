"""Contact sheets (PNG) for reviewing quality findings: image pairs or single images with captions.

Drawn with OpenCV only (fast, no display needed): each tile is the image(s) scaled to a fixed height
on a white card with up to three caption lines below.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from fercurate.images import ImageReadError, read_image, write_image_atomic

TILE = 112  # image side in the sheet (pixels)
MIN_WIDTH = 160  # captions need this much room even under a single image
LINE_H = 14
PAD = 6
FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_SCALE = 0.36


@dataclass
class Tile:
    """One cell of a sheet: one or two image paths and caption lines."""

    paths: Sequence[str | os.PathLike]
    lines: Sequence[str]


def _thumb(path: str | os.PathLike) -> np.ndarray:
    try:
        img = read_image(path)
    except ImageReadError:
        img = np.full((TILE, TILE, 3), 200, np.uint8)
        cv2.line(img, (0, 0), (TILE - 1, TILE - 1), (0, 0, 255), 2)
        cv2.line(img, (0, TILE - 1), (TILE - 1, 0), (0, 0, 255), 2)
        return img
    h, w = img.shape[:2]
    f = TILE / max(h, w)
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_NEAREST if f >= 2 else cv2.INTER_LINEAR
    small = cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=interp)
    card = np.full((TILE, TILE, 3), 255, np.uint8)
    y, x = (TILE - small.shape[0]) // 2, (TILE - small.shape[1]) // 2
    card[y : y + small.shape[0], x : x + small.shape[1]] = small
    return card


def _fit(text: str, width: int) -> str:
    while text and cv2.getTextSize(text, FONT, FONT_SCALE, 1)[0][0] > width:
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text.replace("…", "~")


def render_tile(tile: Tile, n_images: int, n_lines: int) -> np.ndarray:
    """A tile with ``n_images`` image slots and ``n_lines`` caption lines."""
    images_w = n_images * TILE + (n_images - 1) * 2
    width = max(images_w, MIN_WIDTH)
    card = np.full((TILE + n_lines * LINE_H + PAD, width + 2 * PAD, 3), 255, np.uint8)
    for k, p in enumerate(list(tile.paths)[:n_images]):
        x = PAD + (width - images_w) // 2 + k * (TILE + 2)
        card[PAD // 2 : PAD // 2 + TILE, x : x + TILE] = _thumb(p)
    for k, line in enumerate(list(tile.lines)[:n_lines]):
        y = PAD // 2 + TILE + (k + 1) * LINE_H - 3
        cv2.putText(card, _fit(line, width), (PAD, y), FONT, FONT_SCALE, (20, 20, 20), 1, cv2.LINE_AA)
    return card


def contact_sheet(
    tiles: Sequence[Tile], path: str | os.PathLike, *, columns: int = 6, title: str | None = None
) -> int:
    """Write a PNG grid of ``tiles`` (atomically); returns how many tiles were drawn."""
    n_images = max((len(t.paths) for t in tiles), default=1)
    n_lines = max((len(t.lines) for t in tiles), default=1)
    if not tiles:
        blank = np.full((60, 420, 3), 255, np.uint8)
        cv2.putText(blank, _fit(title or "nothing to show", 400), (10, 25), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(blank, "(no rows)", (10, 48), FONT, 0.45, (80, 80, 80), 1, cv2.LINE_AA)
        write_image_atomic(path, blank)
        return 0
    cells = [render_tile(t, n_images, n_lines) for t in tiles]
    h, w = cells[0].shape[:2]
    columns = max(1, min(columns, len(cells)))
    rows = -(-len(cells) // columns)
    # a sheet of few tiles is widened so its title is never cut off
    width = max(columns * w, cv2.getTextSize(title, FONT, 0.55, 1)[0][0] + 20 if title else 0)
    sheet = np.full((rows * h + (30 if title else 0), width, 3), 235, np.uint8)
    top = 0
    if title:
        sheet[:30] = 255
        cv2.putText(sheet, _fit(title, width - 20), (10, 21), FONT, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        top = 30
    for k, cell in enumerate(cells):
        r, c = divmod(k, columns)
        sheet[top + r * h : top + (r + 1) * h, c * w : (c + 1) * w] = cell
        cv2.rectangle(sheet, (c * w, top + r * h), ((c + 1) * w - 1, top + (r + 1) * h - 1), (200, 200, 200), 1)
    write_image_atomic(path, sheet)
    return len(cells)
