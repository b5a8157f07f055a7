"""Verifying near-duplicate candidates: aligned correlation of band-passed 48 px thumbnails.

A 64-bit perceptual hash cannot tell every pair of different, similarly framed faces from a
re-cropped copy (48 px FER faces are all centred and alike; JAFFE/CK+ posers share one studio
set-up). Candidates from the hash index are therefore checked on their grayscale images resized to
48x48 and band-pass filtered (difference of Gaussians, sigma 0.8 and 3 px: keeps facial detail,
drops lighting and the silhouette that make different people in one studio correlate): the centre
36x36 of one is matched (OpenCV ``TM_CCOEFF_NORMED``, i.e. Pearson correlation, over every shift of
up to 6 px) against the other resized to 48..60 px (a crop down to 80 % of the side), both ways
round; the similarity is the best correlation found.

Measured (``benchmarks/dups.py --calibrate``, 5th / 95th percentiles): re-encoded, resized and
cropped copies of FERPlus faces 5th percentile 0.91-0.999 by transform; other photos of one JAFFE
pose+expression 0.90; JAFFE images of *different* posers 95th percentile 0.82, CK+ different
subjects 0.75, random FERPlus pairs 0.45.

Near-blank images (std below :data:`FLAT_STD`) have no correlation to speak of: two blank images are
similar when their mean brightness is within :data:`FLAT_MEAN_DIFF` grey levels, a blank and a
non-blank image never are. Images that cannot be read score ``nan`` (never a duplicate).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np

from fercurate.images import ImageReadError, decode, read_bytes
from fercurate.parallel import map_chunks
from fercurate.quality.hashing import to_gray, to_square, work_size

SIZE = 48
MARGIN = 6  # template = centre (SIZE - 2 * MARGIN) pixels
SCALES: tuple[float, ...] = (1.0, 1.0625, 1.125, 1.1875, 1.25)
DOG_SIGMAS = (0.8, 3.0)
FLAT_STD = 2.0
FLAT_MEAN_DIFF = 8.0


def square(gray: np.ndarray) -> np.ndarray:
    """The SIZE x SIZE uint8 square the similarity is computed on."""
    return to_square(work_size(gray), SIZE)


def _band(sq: np.ndarray) -> np.ndarray:
    x = sq.astype(np.float32)
    return cv2.GaussianBlur(x, (0, 0), DOG_SIGMAS[0]) - cv2.GaussianBlur(x, (0, 0), DOG_SIGMAS[1])


def _pyramid(band: np.ndarray) -> list[np.ndarray]:
    out = []
    for s in SCALES:
        n = int(round(SIZE * s))
        out.append(band if n == SIZE else cv2.resize(band, (n, n), interpolation=cv2.INTER_LINEAR))
    return out


def _one_way(pyr: list[np.ndarray], band: np.ndarray) -> float:
    tpl = band[MARGIN : SIZE - MARGIN, MARGIN : SIZE - MARGIN]
    return max(float(cv2.matchTemplate(img, tpl, cv2.TM_CCOEFF_NORMED).max()) for img in pyr)


def pair_similarities(sa: np.ndarray, sb: np.ndarray) -> np.ndarray:
    """Similarity of aligned stacks of SIZE x SIZE uint8 squares (n, 48, 48) -> (n,) float32, symmetric."""
    sa = np.asarray(sa)
    sb = np.asarray(sb)
    out = np.zeros(len(sa), dtype=np.float32)
    std_a = sa.reshape(len(sa), -1).std(axis=1)
    std_b = sb.reshape(len(sb), -1).std(axis=1)
    for k in range(len(sa)):
        flat_a, flat_b = std_a[k] < FLAT_STD, std_b[k] < FLAT_STD
        if flat_a or flat_b:
            close = abs(float(sa[k].mean()) - float(sb[k].mean())) <= FLAT_MEAN_DIFF
            out[k] = 1.0 if (flat_a and flat_b and close) else 0.0
            continue
        band_a, band_b = _band(sa[k]), _band(sb[k])
        out[k] = max(_one_way(_pyramid(band_a), band_b), _one_way(_pyramid(band_b), band_a))
    return out


def similarity(gray_a: np.ndarray, gray_b: np.ndarray) -> float:
    """Similarity of two grayscale images of any size."""
    return float(pair_similarities(square(gray_a)[None], square(gray_b)[None])[0])


def squares_chunk(paths: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Decode images into (n, SIZE, SIZE) uint8 squares and an ok mask (worker function)."""
    out = np.zeros((len(paths), SIZE, SIZE), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    for k, p in enumerate(paths):
        try:
            img = decode(read_bytes(p), p, color=True)
        except ImageReadError:
            continue
        out[k] = square(to_gray(img))
        ok[k] = True
    return out, ok


def load_squares(
    paths: Sequence[str | os.PathLike], *, workers: int | None = None, desc: str = "decode candidates"
) -> tuple[np.ndarray, np.ndarray]:
    """The squares of many images, on all cores with a progress bar."""
    paths = [str(p) for p in paths]
    if not paths:
        return np.zeros((0, SIZE, SIZE), np.uint8), np.zeros(0, bool)
    parts = list(map_chunks(squares_chunk, paths, workers=workers, chunk_size=256, desc=desc))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _pairs_chunk(items: Sequence[tuple[bytes, bytes]]) -> np.ndarray:
    n = len(items)
    sa = np.frombuffer(b"".join(i[0] for i in items), dtype=np.uint8).reshape(n, SIZE, SIZE)
    sb = np.frombuffer(b"".join(i[1] for i in items), dtype=np.uint8).reshape(n, SIZE, SIZE)
    return pair_similarities(sa, sb)


def verify_pairs(
    squares: np.ndarray, ok: np.ndarray, a: np.ndarray, b: np.ndarray, *, workers: int | None = None,
    desc: str = "verify candidates",
) -> np.ndarray:
    """Similarity of pairs (a[k], b[k]) of rows of ``squares``; nan where an image failed to load."""
    out = np.full(len(a), np.nan, dtype=np.float32)
    good = np.flatnonzero(ok[a] & ok[b])
    if not len(good):
        return out
    if len(good) < 500:
        out[good] = pair_similarities(squares[a[good]], squares[b[good]])
        return out
    items = [(squares[a[k]].tobytes(), squares[b[k]].tobytes()) for k in good]
    sims = list(map_chunks(_pairs_chunk, items, workers=workers, chunk_size=500, desc=desc, unit="pair"))
    out[good] = np.concatenate(sims)
    return out
