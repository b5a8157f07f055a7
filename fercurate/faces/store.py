"""Decoded face crops of many images, cut once and cached on disk: what training, evaluation and the
occlusion scorer read faces from.

* :func:`decode_face` reads one image and cuts its face at ``size``: the face box made square
  (:func:`fercurate.faces.crop.face_crop`) or, with ``align="dlib5"``, aligned with dlib's 5 points
  (:func:`fercurate.faces.crop.aligned_crop`, as the RAN paper preprocesses); RGB, or grey with
  ``grey=True`` (the scorer's 48 px grey crops).
* :func:`load_faces` decodes every row of a :class:`FaceSource` on all cores into a
  :class:`FaceStore` (N, C, S, S) uint8, cached in ``<workspace>/cache/faces`` keyed by the images,
  boxes, size, alignment and colour (:func:`cache_key`), so later runs start at once. Caches up to
  :data:`IN_MEMORY_MAX_BYTES` are read into memory; larger ones stay memory-mapped. Unreadable
  images become rows in ``failures``, never silent drops; :func:`drop_failures` moves them to a
  row set's ``excluded``.

Anything with image ``paths``, face ``bboxes`` and its ``manifest`` is a face source: RAN's
:class:`fercurate.ran.data.Samples`, or :meth:`FaceRows.of` a manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import cv2
import numpy as np

from fercurate import images
from fercurate.atomic import atomic_path, write_text
from fercurate.errors import InputError
from fercurate.schema import FACE_ALIGNMENTS
from fercurate.faces.crop import aligned_crop, face_crop
from fercurate.manifest import Manifest
from fercurate.parallel import map_chunks
from fercurate.workspace import Workspace

# 2: faces are cut by fercurate.faces.crop (edge-padded, not black) and the key holds the alignment
CACHE_VERSION = 2
# Caches up to this size are read into memory; larger ones (e.g. AffectNet at 224 px: ~42 GB) stay
# memory-mapped and are read batch by batch.
IN_MEMORY_MAX_BYTES = 4 << 30
ALIGNMENTS = FACE_ALIGNMENTS


class FaceSource(Protocol):
    """Rows to cut faces from: absolute image paths, face boxes (N, 4) x, y, w, h (NaN rows: none)."""

    manifest: Manifest
    paths: list[str]
    bboxes: np.ndarray

    def __len__(self) -> int: ...


class RowSet(FaceSource, Protocol):
    """A face source that can drop rows, keeping why (RAN's Samples)."""

    sample_ids: np.ndarray
    excluded: list[dict]

    def subset(self, keep: np.ndarray) -> Any: ...


@dataclass(frozen=True)
class FaceRows:
    """Every row of a manifest as a face source (its face box where it has one)."""

    manifest: Manifest
    paths: list[str]
    bboxes: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    @classmethod
    def of(cls, manifest: Manifest) -> "FaceRows":
        nan = [np.nan] * 4
        boxes = [nan if b is None else [b["x"], b["y"], b["w"], b["h"]] for b in manifest.table.column("bbox").to_pylist()]
        return cls(manifest, [str(p) for p in manifest.image_paths()], np.asarray(boxes, np.float32).reshape(-1, 4))


def check_align(align: str) -> str:
    """``align`` if it names a known face preprocessing, else an error listing them."""
    if align not in ALIGNMENTS:
        raise InputError(f"unknown face alignment {align!r} (known: {', '.join(ALIGNMENTS)})")
    return align


def decode_face(
    path: str, bbox: np.ndarray | None, size: int, align: str = "bbox", *, grey: bool = False
) -> tuple[np.ndarray, tuple[int, int], np.ndarray | None]:
    """Read an image and cut its face at ``size``: uint8 RGB (3, size, size) or grey (1, size, size),
    the image's (w, h) and, for ``align="dlib5"``, the 2x3 image->face matrix (None for the square box)."""
    img = images.read_image(path, color=not grey)
    h, w = img.shape[:2]
    matrix = None
    if check_align(align) == "dlib5":
        face, matrix = aligned_crop(img, bbox, size)
    else:
        face = face_crop(img, bbox, size)
    if grey:
        return np.ascontiguousarray(face[None]), (w, h), matrix
    face = cv2.cvtColor(face, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(face.transpose(2, 0, 1)), (w, h), matrix


def _decode_chunk(
    items: Sequence[tuple[str, np.ndarray, int, str, bool]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str | None]]:
    """Worker: decode a chunk of (path, bbox, size, align, grey); failures give a zero face and a reason."""
    size, grey = items[0][2], items[0][4]
    out = np.zeros((len(items), 1 if grey else 3, size, size), dtype=np.uint8)
    sizes = np.zeros((len(items), 2), dtype=np.float32)
    matrices = np.full((len(items), 2, 3), np.nan, dtype=np.float64)
    reasons: list[str | None] = []
    for i, (path, bbox, _, align, _) in enumerate(items):
        try:
            out[i], sizes[i], m = decode_face(path, bbox, size, align, grey=grey)
            if m is not None:
                matrices[i] = m
            reasons.append(None)
        except images.ImageReadError as exc:
            reasons.append(str(exc))
    return out, sizes, matrices, reasons


@dataclass
class FaceStore:
    """Decoded faces (N, C, S, S) uint8 (C = 3 RGB, or 1 grey) aligned with a face source, plus per-row failures."""

    faces: np.ndarray
    sizes: np.ndarray  # (N, 2) decoded image width, height (0 where decoding failed)
    failures: dict[int, str]
    cache_path: Path | None = None
    matrices: np.ndarray | None = None  # (N, 2, 3) image->face pixel matrices of aligned faces

    @property
    def ok(self) -> np.ndarray:
        mask = np.ones(len(self.faces), dtype=bool)
        mask[list(self.failures)] = False
        return mask


def cache_key(samples: FaceSource, size: int, align: str = "bbox", *, grey: bool = False) -> str:
    """A content key for the decoded faces: image paths, boxes, size, alignment, colour and the cache format version."""
    h = hashlib.sha256()
    # grey crops are keyed apart; the colour key stays what it was before grey crops existed
    h.update(json.dumps({"v": CACHE_VERSION, "size": size, "n": len(samples), "align": align,
                         **({"grey": True} if grey else {})}).encode())
    for p in samples.paths:
        h.update(p.encode())
        h.update(b"\0")
    h.update(np.ascontiguousarray(samples.bboxes).tobytes())
    for p in samples.paths:
        try:
            st = os.stat(p)
            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
        except OSError:
            h.update(b"missing")
    return h.hexdigest()[:24]


def default_cache_dir(workspace: Workspace | str | os.PathLike | None = None) -> Path:
    """``<workspace>/cache/faces`` (the workspace given, else the current one)."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace.current(workspace)
    return ws.root / "cache" / "faces"


def load_faces(
    samples: FaceSource,
    size: int,
    *,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    workers: int | None = None,
    in_memory: bool | None = None,
    desc: str = "decode faces",
    align: str = "bbox",
    grey: bool = False,
    workspace: Workspace | str | os.PathLike | None = None,
) -> FaceStore:
    """Decode (or load from the cache) every face of ``samples`` at ``size`` x ``size``.

    ``align``: ``bbox`` (the face box made square) or ``dlib5`` (5-point similarity alignment), see
    :mod:`fercurate.faces.crop`; ``grey``: one grey channel instead of RGB. The cache is
    ``cache_dir``, else ``<workspace>/cache/faces``. ``in_memory``: read the cache into RAM
    (default: when it is at most :data:`IN_MEMORY_MAX_BYTES`).
    """
    check_align(align)
    channels = 1 if grey else 3
    if in_memory is None:
        in_memory = len(samples) * channels * size * size <= IN_MEMORY_MAX_BYTES
    cache = Path(cache_dir) if cache_dir else default_cache_dir(workspace)
    key = cache_key(samples, size, align, grey=grey)
    npy, meta = cache / f"{key}.npy", cache / f"{key}.json"
    if use_cache and npy.exists() and meta.exists():
        info = json.loads(meta.read_text())
        faces = np.load(npy, mmap_mode="r")
        if in_memory:
            faces = np.ascontiguousarray(faces)
        sizes = np.asarray(info["sizes"], dtype=np.float32).reshape(-1, 2)
        matrices = np.asarray(info["matrices"], dtype=np.float64).reshape(-1, 2, 3) if info.get("matrices") else None
        return FaceStore(faces, sizes, {int(k): v for k, v in info["failures"].items()}, npy, matrices)
    n = len(samples)
    items = [(p, b, size, align, grey) for p, b in zip(samples.paths, samples.bboxes)]
    failures: dict[int, str] = {}
    sizes = np.zeros((n, 2), dtype=np.float32)
    matrices = np.full((n, 2, 3), np.nan, dtype=np.float64)
    chunk = 512

    def fill(faces: np.ndarray) -> None:
        start = 0
        for out, sz, mats, reasons in map_chunks(_decode_chunk, items, workers=workers, chunk_size=chunk, desc=desc,
                                                 unit="img"):
            faces[start : start + len(out)] = out
            sizes[start : start + len(out)] = sz
            matrices[start : start + len(out)] = mats
            for j, r in enumerate(reasons):
                if r is not None:
                    failures[start + j] = r
            start += len(out)

    aligned = align != "bbox"
    if not use_cache:
        faces = np.zeros((n, channels, size, size), dtype=np.uint8)
        fill(faces)
        return FaceStore(faces, sizes, failures, None, matrices if aligned else None)
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_path(npy, suffix=".npy.tmp") as tmp:
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, channels, size, size))
        fill(mm)
        mm.flush()
        del mm
    write_text(meta, json.dumps({"version": CACHE_VERSION, "size": size, "n": n, "align": align,
                                 **({"grey": True} if grey else {}),
                                 "manifest": str(samples.manifest.path), "failures": failures,
                                 "sizes": sizes.ravel().tolist(),
                                 "matrices": np.nan_to_num(matrices).ravel().tolist() if aligned else None}))
    faces = np.load(npy, mmap_mode="r")
    if in_memory:
        faces = np.ascontiguousarray(faces)
    return FaceStore(faces, sizes, failures, npy, matrices if aligned else None)


R = TypeVar("R", bound=RowSet)


def drop_failures(samples: R, store: FaceStore) -> tuple[R, FaceStore]:
    """Move rows whose image could not be decoded to ``excluded`` (with the decoder's reason)."""
    if not store.failures:
        return samples, store
    ok = store.ok
    kept = samples.subset(ok)
    kept.excluded.extend({"sample_id": samples.sample_ids[i], "kind": "unreadable", "reason": r}
                         for i, r in sorted(store.failures.items()))
    matrices = None if store.matrices is None else store.matrices[ok]
    return kept, FaceStore(store.faces[ok], store.sizes[ok], {}, store.cache_path, matrices)


__all__ = [
    "ALIGNMENTS",
    "CACHE_VERSION",
    "IN_MEMORY_MAX_BYTES",
    "FaceRows",
    "FaceSource",
    "FaceStore",
    "RowSet",
    "cache_key",
    "check_align",
    "decode_face",
    "default_cache_dir",
    "drop_failures",
    "load_faces",
]
