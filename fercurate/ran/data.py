"""From a manifest to the rows of a run: row selection, targets, the decoded-face cache, landmarks.

* :func:`select_samples` picks rows (splits and/or a subset's ids), drops rows that cannot be used
  (no label, a class outside the label space, no emotion votes) into ``excluded`` with a reason, and
  builds hard labels and, for FERPlus, vote-distribution targets.
* :func:`load_faces` (from :mod:`fercurate.faces.store`, the face cache the occlusion scorer shares)
  decodes every face once (all cores), cut as the face box made square or, with ``align="dlib5"``,
  aligned with dlib's 5 points as the RAN paper preprocesses, and caches the uint8 result on disk
  (``<workspace>/cache/faces``). The alignment is a training setting stored in the checkpoint, so
  evaluation cuts faces the same way.

Batches of these faces and their augmentation are :mod:`fercurate.ran.batches`'.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from fercurate.compat import moved_module
from fercurate.errors import InputError
from fercurate.faces.crop import square_box
from fercurate.faces.store import (  # noqa: F401 - the face cache moved to faces/store.py; ran's modules use it from here
    CACHE_VERSION,
    IN_MEMORY_MAX_BYTES,
    FaceStore,
    cache_key,
    check_align,
    decode_face,
    default_cache_dir,
    drop_failures,
    load_faces,
)
from fercurate.manifest import Manifest
from fercurate.ran.config import TARGET_MODES
from fercurate.schema import CANONICAL_LABELS, FERPLUS_VOTE_COLUMNS


def label_names(num_classes: int) -> list[str]:
    """The label map of a K-class model: canonical order, 8 classes or 7 (contempt dropped)."""
    if num_classes not in (7, 8):
        raise InputError(f"--classes must be 7 or 8, not {num_classes}")
    return list(CANONICAL_LABELS[:num_classes])


def vote_distribution(votes: np.ndarray, num_classes: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """FER+ vote counts (N, 10, FER+ column order) -> ((N, K) target distributions, (N,) valid).

    Uses :func:`fercurate.votes.vote_targets` in its ``probability`` mode
    (the FER+ authors' processing: single votes dropped, the top emotions kept; images where unknown/NF
    wins or no clear majority exists are not valid). With 7 classes the contempt share is dropped and
    the rest renormalised (rows left with nothing become invalid).
    """
    from fercurate.votes import vote_targets

    targets, valid = vote_targets(np.asarray(votes), "probability")
    targets = targets[:, :num_classes].astype(np.float32)
    total = targets.sum(1, keepdims=True)
    valid = valid & (total[:, 0] > 0)
    targets = np.divide(targets, total, out=np.zeros_like(targets), where=total > 0)
    return targets, valid


@dataclass
class Samples:
    """The rows a run uses, in a fixed order, with everything a batch needs except the pixels."""

    manifest: Manifest
    sample_ids: np.ndarray  # (N,) object
    paths: list[str]  # absolute image paths
    bboxes: np.ndarray  # (N, 4) float32 x, y, w, h; NaN where the manifest has none
    sizes: np.ndarray  # (N, 2) float32 width, height from the manifest; NaN where unknown
    labels: np.ndarray  # (N,) int64 class index, -1 = unlabelled (evaluation only)
    soft: np.ndarray | None = None  # (N, K) vote distributions
    landmarks: np.ndarray | None = None  # (N, 2L) float32 in image pixels, NaN rows where missing
    excluded: list[dict] = field(default_factory=list)  # {"sample_id", "reason", "kind": "label" | "unreadable"}
    split_of: dict[str, str] = field(default_factory=dict)  # the split of every selected row, excluded ones too

    def __len__(self) -> int:
        return len(self.sample_ids)

    def subset(self, keep: np.ndarray) -> "Samples":
        """Rows where ``keep`` is true (same order)."""
        return Samples(
            self.manifest,
            self.sample_ids[keep],
            [p for p, k in zip(self.paths, keep) if k],
            self.bboxes[keep],
            self.sizes[keep],
            self.labels[keep],
            None if self.soft is None else self.soft[keep],
            None if self.landmarks is None else self.landmarks[keep],
            list(self.excluded),
            self.split_of,
        )


def _column(table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name)
    if pa.types.is_dictionary(col.type):
        col = col.cast(pa.string())
    return col.to_numpy(zero_copy_only=False)


def _bboxes(table: pa.Table) -> np.ndarray:
    col = table.column("bbox").combine_chunks()
    out = np.full((table.num_rows, 4), np.nan, dtype=np.float32)
    if col.null_count == table.num_rows:
        return out
    valid = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    for i, key in enumerate("xywh"):
        vals = col.field(key).to_numpy(zero_copy_only=False).astype(np.float32)
        out[:, i] = np.where(valid, vals, np.nan)
    return out


def _landmarks(table: pa.Table) -> np.ndarray | None:
    rows = table.column("landmarks").to_pylist()
    lengths = {len(r) for r in rows if r}
    if not lengths:
        return None
    width = max(lengths)
    out = np.full((len(rows), width), np.nan, dtype=np.float32)
    for i, r in enumerate(rows):
        if r and len(r) == width:
            out[i] = r
    return out


def select_samples(
    manifest: Manifest,
    *,
    splits: Sequence[str] = (),
    ids: set[str] | None = None,
    num_classes: int = 8,
    targets: str = "majority",
    require_labels: bool = True,
) -> Samples:
    """The manifest's rows in ``splits`` (all if empty) and in ``ids`` (if given), ready for a run.

    With ``require_labels`` rows without a usable label are moved to ``excluded`` (with the reason);
    without it (prediction) they stay, labelled -1.
    """
    if targets not in TARGET_MODES:
        raise InputError(f"unknown targets {targets!r} (known: {', '.join(TARGET_MODES)})")
    if splits:
        manifest = manifest.where_split(*splits)
    table = manifest.table
    if ids is not None:
        all_ids = _column(table, "sample_id")
        mask = np.isin(all_ids, np.asarray(sorted(ids), dtype=object))
        table = table.filter(pa.array(mask))
    if table.num_rows == 0:
        where = f" split {', '.join(splits)}" if splits else ""
        raise InputError(f"{manifest.path}: no rows selected{where}{' in the subset' if ids is not None else ''}")
    sample_ids = _column(table, "sample_id").astype(object)
    label_ids = _column(table, "label_id").astype(np.int64)
    excluded: list[dict] = []
    keep = np.ones(len(sample_ids), dtype=bool)
    labels = label_ids.copy()
    outside = label_ids >= num_classes
    if outside.any():
        name = ", ".join(sorted({CANONICAL_LABELS[i] for i in label_ids[outside]}))
        for sid in sample_ids[outside]:
            excluded.append({"sample_id": sid, "kind": "label",
                             "reason": f"label {name} is not in the {num_classes}-class label space"})
        keep &= ~outside
        labels[outside] = -1
    soft = None
    if targets == "votes":
        votes = table.column("label_votes").to_pylist()
        have = np.array([v is not None and len(v) == len(FERPLUS_VOTE_COLUMNS) for v in votes])
        if not have.any():
            raise InputError(f"{manifest.path}: --targets votes needs FERPlus vote counts (label_votes is empty)")
        arr = np.zeros((len(votes), len(FERPLUS_VOTE_COLUMNS)), dtype=np.float32)
        arr[have] = np.asarray([v for v, h in zip(votes, have) if h], dtype=np.float32)
        soft, valid = vote_distribution(arr, num_classes)
        no_votes = keep & ~(valid & have)
        for sid in sample_ids[no_votes]:
            excluded.append({"sample_id": sid, "kind": "label",
                             "reason": "no vote-distribution target (FER+ processing: unknown/NF wins "
                                       "or no emotion holds a clear majority)"})
        if require_labels:
            keep &= ~no_votes
    if require_labels:
        unlabelled = keep & (labels < 0)
        for sid in sample_ids[unlabelled]:
            excluded.append({"sample_id": sid, "kind": "label", "reason": "no canonical label (label_id = -1)"})
        keep &= ~unlabelled
    root = manifest.root
    paths = [str(root / p) for p in _column(table, "image_path")]
    widths = _column(table, "width").astype(np.float32)
    heights = _column(table, "height").astype(np.float32)
    samples = Samples(
        manifest,
        sample_ids,
        paths,
        _bboxes(table),
        np.stack([widths, heights], axis=1),
        labels,
        soft,
        _landmarks(table),
        excluded,
        dict(zip(sample_ids.tolist(), _column(table, "split").tolist())),
    )
    samples = samples.subset(keep)
    if len(samples) == 0:
        raise InputError(f"{manifest.path}: none of the selected rows is usable ({excluded[0]['reason']}, ...)")
    return samples


# --- decoding faces: fercurate.faces.store (check_align, decode_face, FaceStore, load_faces, ...) ---


def drop_missing_files(samples: Samples) -> Samples:
    """Without a cache, images are decoded during the run: rows whose file is absent are excluded up front."""
    missing = [i for i, p in enumerate(samples.paths) if not os.path.exists(p)]
    if not missing:
        return samples
    keep = np.ones(len(samples), dtype=bool)
    keep[missing] = False
    kept = samples.subset(keep)
    kept.excluded.extend({"sample_id": samples.sample_ids[i], "kind": "unreadable",
                          "reason": f"{samples.paths[i]}: image file missing"} for i in missing)
    return kept


def landmark_fractions(samples: Samples, store: FaceStore | None) -> np.ndarray:
    """Landmarks in fractions of each face square (N, 2L); raises when a row has none."""
    if samples.landmarks is None:
        raise InputError(f"{samples.manifest.path}: --crops landmark needs the manifest's landmarks column (it is empty)")
    missing = ~np.all(np.isfinite(samples.landmarks), axis=1)
    if missing.any():
        first = samples.sample_ids[np.argmax(missing)]
        raise InputError(
            f"{samples.manifest.path}: {int(missing.sum())} selected rows have no landmarks "
            f"(e.g. {first}); landmark-based cropping needs them on every row"
        )
    if store is not None and store.matrices is not None:
        # aligned faces: carry the landmarks through each face's alignment (pixel centres -> fractions)
        size = store.faces.shape[-1]
        pts = samples.landmarks.reshape(len(samples), -1, 2).astype(np.float64)
        moved = np.einsum("nij,npj->npi", store.matrices[:, :, :2], pts) + store.matrices[:, None, :, 2]
        return ((moved + 0.5) / size).reshape(len(samples), -1).astype(samples.landmarks.dtype)
    sizes = store.sizes if store is not None else samples.sizes
    if store is None and not np.all(np.isfinite(sizes)):
        raise InputError(f"{samples.manifest.path}: --crops landmark without the face cache needs the manifest's "
                         "width/height (ingest with --verify) or a bbox on every row")
    out = np.empty_like(samples.landmarks)
    for i in range(len(samples)):
        w, h = sizes[i]
        x, y, side = square_box(samples.bboxes[i], w, h)
        out[i, 0::2] = (samples.landmarks[i, 0::2] - x) / side
        out[i, 1::2] = (samples.landmarks[i, 1::2] - y) / side
    return out


# the batches and augmentation moved to fercurate.ran.batches
__getattr__ = moved_module(__name__, "fercurate.ran.batches")
