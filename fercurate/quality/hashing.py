"""Image fingerprints for duplicate search: content hashes and perceptual hashes.

For every image we compute, in one decode:

* ``file_sha256``: SHA-256 of the file bytes (byte-identical copies);
* ``pixel_sha256``: SHA-256 of the decoded pixels (shape + uint8 values; colour images whose three
  channels are equal count as grayscale), so a PNG re-saved with other compression settings, or as
  TIFF/BMP, still matches. Alpha is dropped (OpenCV's colour decode), EXIF orientation applied;
* ``phash``: a 64-bit DCT perceptual hash of the grayscale image: resize to 32x32 (area
  interpolation), 2-D DCT, the 8x8 lowest frequencies, one bit per AC coefficient above their
  median (63 informative bits; the DC bit is always 0). Grayscale by construction, so robust to
  colour->gray conversion, and to re-encoding and resizing (<= 6 bits changed on real faces);
* ``phash_crops``: the same hash of ten crops (centre 92 % and 84 %, the four 90 % corners, and 7 %
  off each of the four sides). A copy cropped by a few percent is within a few bits of one of them
  even when its full-image hash is 10-20 bits away (pHash of a 48 px face is very sensitive to
  crops: on FERPlus, 6 % cut off one side moves the full-image hash by 8-16 bits; with the crop
  hashes 100 % of such copies are within 8 bits; ``benchmarks/dups.py --calibrate``);
* ``width``, ``height``, ``gray_mean``, ``gray_std`` (a near-zero std marks a blank image).

:func:`hash_manifest` hashes a manifest's images on all cores with a progress bar and caches the
result as the ``hashes`` layer (``manifests/<name>.hashes.parquet``); a re-run re-hashes only images
whose file size or modification time changed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fercurate.errors import InputError
from fercurate.images import ImageReadError, decode, read_bytes
from fercurate.layers import read_layer, write_layer
from fercurate.manifest import Manifest
from fercurate.parallel import map_chunks
from fercurate.workspace import layer_path

# Bump when anything below changes what a hash means (invalidates cached hash layers).
HASH_VERSION = "phash-dct32x8-ac-median/crops10/v1"
HASH_SIZE = 32  # the grayscale resize the DCT runs on
LOW = 8  # low-frequency block kept (LOW x LOW coefficients)
WORK_MAX = 192  # larger images are area-downscaled to this side first (speed; no effect on the hash)
# (kept width fraction, kept height fraction, anchor x, anchor y) of each crop hashed besides the
# full image; anchor 0 = left/top edge kept, 1 = right/bottom edge kept, 0.5 = centred.
CROPS: tuple[tuple[float, float, float, float], ...] = (
    (0.92, 0.92, 0.5, 0.5),
    (0.84, 0.84, 0.5, 0.5),
    (0.90, 0.90, 0.0, 0.0),
    (0.90, 0.90, 1.0, 0.0),
    (0.90, 0.90, 0.0, 1.0),
    (0.90, 0.90, 1.0, 1.0),
    (0.93, 1.00, 0.0, 0.5),
    (0.93, 1.00, 1.0, 0.5),
    (1.00, 0.93, 0.5, 0.0),
    (1.00, 0.93, 0.5, 1.0),
)
N_CODES = 1 + len(CROPS)

HASH_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("image_path", pa.string(), nullable=False),
        pa.field("file_size", pa.int64()),
        pa.field("mtime_ns", pa.int64()),
        pa.field("file_sha256", pa.string()),
        pa.field("pixel_sha256", pa.string()),
        pa.field("phash", pa.uint64()),
        pa.field("phash_crops", pa.list_(pa.uint64())),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("gray_mean", pa.float32()),
        pa.field("gray_std", pa.float32()),
        pa.field("error", pa.string()),
    ]
)


def dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix (rows = frequencies), so ``D @ X @ D.T`` is OpenCV's ``cv2.dct``."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m.astype(np.float32)


_D = dct_matrix(HASH_SIZE)[:LOW]
_BIT_WEIGHTS = np.left_shift(np.uint64(1), np.arange(LOW * LOW, dtype=np.uint64))


def phash_batch(squares: np.ndarray) -> np.ndarray:
    """pHash of a batch of HASH_SIZE x HASH_SIZE float32 grayscale images -> uint64 array."""
    squares = np.asarray(squares, dtype=np.float32).reshape(-1, HASH_SIZE, HASH_SIZE)
    coeffs = (_D @ squares @ _D.T).reshape(len(squares), LOW * LOW)
    med = np.median(coeffs[:, 1:], axis=1, keepdims=True)
    bits = coeffs > med
    bits[:, 0] = False  # DC: brightness, not structure
    return (bits.astype(np.uint64) * _BIT_WEIGHTS).sum(axis=1, dtype=np.uint64)


def to_square(gray: np.ndarray, size: int = HASH_SIZE) -> np.ndarray:
    """Resize to ``size`` x ``size`` (area interpolation when shrinking, bilinear when growing)."""
    h, w = gray.shape[:2]
    interp = cv2.INTER_AREA if min(h, w) >= size else cv2.INTER_LINEAR
    return cv2.resize(gray, (size, size), interpolation=interp)


def crop(gray: np.ndarray, sx: float, sy: float, ax: float, ay: float) -> np.ndarray:
    """The ``sx`` fraction of the width and ``sy`` of the height, anchored at (ax, ay) in [0, 1]."""
    h, w = gray.shape[:2]
    ch, cw = max(1, round(h * sy)), max(1, round(w * sx))
    y, x = round((h - ch) * ay), round((w - cw) * ax)
    return gray[y : y + ch, x : x + cw]


def hash_views(gray: np.ndarray) -> np.ndarray:
    """The N_CODES squares (full image, then CROPS) of one grayscale image, float32."""
    return np.stack(
        [to_square(gray)] + [to_square(crop(gray, *c)) for c in CROPS]
    ).astype(np.float32)


def gray_phashes(gray: np.ndarray) -> np.ndarray:
    """The N_CODES hashes (full image first) of one grayscale uint8 image."""
    return phash_batch(hash_views(gray))


def pixel_sha256(img: np.ndarray) -> str:
    """SHA-256 of decoded pixels; colour images with equal channels are hashed as grayscale."""
    if img.ndim == 3 and img.shape[2] == 3:
        b, g, r = img[..., 0], img[..., 1], img[..., 2]
        if np.array_equal(b, g) and np.array_equal(g, r):
            img = b
    img = np.ascontiguousarray(img)
    c = 1 if img.ndim == 2 else img.shape[2]
    h = hashlib.sha256(f"{img.shape[0]}x{img.shape[1]}x{c}:".encode())
    h.update(img.tobytes())
    return h.hexdigest()


def to_gray(img: np.ndarray) -> np.ndarray:
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def work_size(gray: np.ndarray) -> np.ndarray:
    """Area-downscale so the longer side is at most WORK_MAX (hash results are unchanged, work is not)."""
    h, w = gray.shape
    if max(h, w) <= WORK_MAX:
        return gray
    f = WORK_MAX / max(h, w)
    return cv2.resize(gray, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


@dataclass
class _One:
    file_size: int | None = None
    mtime_ns: int | None = None
    file_sha: str | None = None
    pixel_sha: str | None = None
    width: int | None = None
    height: int | None = None
    mean: float = float("nan")
    std: float = float("nan")
    error: str | None = None


def hash_paths_chunk(paths: Sequence[str]) -> dict[str, np.ndarray | list]:
    """Hash one chunk of image files (worker function for :func:`fercurate.parallel.map_chunks`)."""
    ones: list[_One] = []
    views = np.zeros((len(paths), N_CODES, HASH_SIZE, HASH_SIZE), dtype=np.float32)
    ok = np.zeros(len(paths), dtype=bool)
    for k, p in enumerate(paths):
        one = _One()
        ones.append(one)
        try:
            data = read_bytes(p)
            st = os.stat(p)
            one.file_size, one.mtime_ns = st.st_size, st.st_mtime_ns
            one.file_sha = hashlib.sha256(data).hexdigest()
            img = decode(data, p, color=True)
        except (ImageReadError, OSError) as exc:
            one.error = str(exc).split(": ", 1)[-1] if isinstance(exc, ImageReadError) else f"cannot read: {exc}"
            continue
        one.pixel_sha = pixel_sha256(img)
        gray = to_gray(img)
        one.height, one.width = gray.shape
        one.mean, one.std = (float(v[0][0]) for v in cv2.meanStdDev(gray))
        work = work_size(gray)
        views[k] = hash_views(work)
        ok[k] = True
    codes = np.zeros((len(paths), N_CODES), dtype=np.uint64)
    if ok.any():
        codes[ok] = phash_batch(views[ok].reshape(-1, HASH_SIZE, HASH_SIZE)).reshape(-1, N_CODES)
    return {"ones": ones, "codes": codes, "ok": ok}


def hash_files(
    paths: Sequence[str | os.PathLike], *, workers: int | None = None, desc: str = "hash"
) -> tuple[list[_One], np.ndarray, np.ndarray]:
    """Hash image files on all cores: (per-file records, codes (n, N_CODES) full image first, ok mask)."""
    paths = [str(p) for p in paths]
    ones: list[_One] = []
    codes, oks = [], []
    for res in map_chunks(hash_paths_chunk, paths, workers=workers, chunk_size=256, desc=desc):
        ones.extend(res["ones"])
        codes.append(res["codes"])
        oks.append(res["ok"])
    if not paths:
        return [], np.zeros((0, N_CODES), np.uint64), np.zeros(0, bool)
    return ones, np.concatenate(codes), np.concatenate(oks)


def _table(ids: Sequence[str], rel: Sequence[str], ones: list[_One], codes: np.ndarray, ok: np.ndarray) -> pa.Table:
    offsets = np.concatenate([[0], np.cumsum(np.where(ok, len(CROPS), 0))]).astype(np.int32)
    crops = pa.ListArray.from_arrays(
        pa.array(offsets), pa.array(codes[ok, 1:].ravel(), type=pa.uint64()), mask=pa.array(~ok)
    )
    return pa.Table.from_arrays(
        [
            pa.array(list(ids), pa.string()),
            pa.array(list(rel), pa.string()),
            pa.array([o.file_size for o in ones], pa.int64()),
            pa.array([o.mtime_ns for o in ones], pa.int64()),
            pa.array([o.file_sha for o in ones], pa.string()),
            pa.array([o.pixel_sha for o in ones], pa.string()),
            pa.array(codes[:, 0], pa.uint64(), mask=~ok),
            crops,
            pa.array([o.width for o in ones], pa.int32()),
            pa.array([o.height for o in ones], pa.int32()),
            pa.array([o.mean for o in ones], pa.float32()),
            pa.array([o.std for o in ones], pa.float32()),
            pa.array([o.error for o in ones], pa.string()),
        ],
        schema=HASH_SCHEMA,
    )


def hashes_path(manifest: Manifest) -> Path:
    if manifest.path is None:
        raise InputError(f"manifest {manifest.name} has no path: cannot place its hashes layer")
    return layer_path(manifest.path, "hashes")


def hash_manifest(
    manifest: Manifest, *, workers: int | None = None, refresh: bool = False, write: bool = True
) -> pa.Table:
    """The hashes of every row of ``manifest`` (rows in manifest order), cached as its ``hashes`` layer.

    Cached rows are reused when the hash version, image path, file size and mtime all match;
    unreadable images get a row with ``error`` set (never dropped). Hashing a selection of a
    manifest (e.g. one split) keeps the cached rows of the other samples in the layer.
    """
    ids = manifest.table.column("sample_id").to_pylist()
    rel = manifest.table.column("image_path").to_pylist()
    abs_paths = [str(p) for p in manifest.image_paths()]
    cached = None if refresh else _read_cache(manifest)
    todo = np.ones(len(ids), dtype=bool)
    if cached is not None and cached.num_rows:
        todo = ~_still_valid(cached, ids, rel, abs_paths)
    if cached is not None and not todo.any():
        table = _align(cached, ids)
        return table
    idx = np.flatnonzero(todo)
    ones, codes, ok = hash_files([abs_paths[i] for i in idx], workers=workers, desc=f"hash {manifest.name}")
    fresh = _table([ids[i] for i in idx], [rel[i] for i in idx], ones, codes, ok)
    if cached is not None and cached.num_rows and len(idx) < len(ids):
        keep = pc.is_in(cached.column("sample_id"), value_set=pa.array([ids[i] for i in np.flatnonzero(~todo)]))
        table = pa.concat_tables([cached.filter(keep), fresh])
    else:
        table = fresh
    table = _align(table, ids)
    if write:
        stored = table
        if cached is not None and cached.num_rows:
            others = pc.invert(pc.is_in(cached.column("sample_id"), value_set=pa.array(ids, pa.string())))
            stored = pa.concat_tables([table, cached.filter(others)])
        write_layer(
            stored,
            hashes_path(manifest),
            layer="hashes",
            manifest=manifest.name,
            provenance={"hash_version": HASH_VERSION, "root": str(manifest.root), "rows": stored.num_rows},
        )
    return table


def _read_cache(manifest: Manifest) -> pa.Table | None:
    path = hashes_path(manifest)
    if not path.exists():
        return None
    try:
        table, meta = read_layer(path, "hashes")
    except InputError:
        return None
    if meta.get("provenance", {}).get("hash_version") != HASH_VERSION or table.schema != HASH_SCHEMA:
        return None
    return table


def _still_valid(cached: pa.Table, ids: list[str], rel: list[str], abs_paths: list[str]) -> np.ndarray:
    """Which manifest rows have a cached hash for the same file, size and mtime."""
    pos = {sid: i for i, sid in enumerate(cached.column("sample_id").to_pylist())}
    c_rel = cached.column("image_path").to_pylist()
    c_size = cached.column("file_size").to_pylist()
    c_mtime = cached.column("mtime_ns").to_pylist()
    valid = np.zeros(len(ids), dtype=bool)
    for k, sid in enumerate(ids):
        i = pos.get(sid)
        if i is None or c_rel[i] != rel[k] or c_size[i] is None:
            continue
        try:
            st = os.stat(abs_paths[k])
        except OSError:
            continue
        valid[k] = st.st_size == c_size[i] and st.st_mtime_ns == c_mtime[i]
    return valid


def _align(table: pa.Table, ids: list[str]) -> pa.Table:
    """Rows in the order of ``ids``."""
    pos = {sid: i for i, sid in enumerate(table.column("sample_id").to_pylist())}
    return table.take(pa.array([pos[s] for s in ids], pa.int64()))


def codes_of(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(codes (n, N_CODES) uint64 with the full-image hash first, ok mask) from a hashes table."""
    ok = pc.is_valid(table.column("phash")).to_numpy(zero_copy_only=False)
    n = table.num_rows
    codes = np.zeros((n, N_CODES), dtype=np.uint64)
    codes[:, 0] = pc.fill_null(table.column("phash"), 0).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(table.column("phash_crops")).to_numpy(zero_copy_only=False)
    codes[ok, 1:] = flat.reshape(-1, len(CROPS))
    codes[~ok] = 0
    return codes, ok

