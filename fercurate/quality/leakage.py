"""Leaked samples: which rows must leave a split so that no evaluation image was seen in training.

**Rule.** A duplicate pair (exact file, exact pixels, or verified near duplicate; see
:mod:`fercurate.quality.dups` for the thresholds) *leaks* when it crosses the training boundary:
one image is in a ``train`` split and the other in any other split (``val``, ``test``), of this
manifest or of any other manifest in the workspace (FERPlus test vs FERPlus train, RAF-DB test vs
AffectNet train, ...). Both images of a leaking pair are *leaked*: dropping the evaluation side gives
a leak-free test set (``test-clean``), dropping the training side gives a training set that can be
scored on the full, paper-comparable test set (``train-clean``). Pairs inside one split, and pairs
between ``val`` and ``test``, are duplicates but not leaks (reported by ``fercurate quality dups``).

``fercurate subsets build M --exclude-leaked`` uses :func:`leaked_sample_ids`. It reuses the
manifest's ``dups`` layer when that layer is up to date for every manifest in the workspace (same
files, thresholds and hash version); otherwise it computes the pairs afresh from the cached
``hashes`` layers (hashing any image not hashed yet), without rewriting the ``dups`` layers.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from fercurate.manifest import Manifest, read_manifest
from fercurate.quality import dups
from fercurate.workspace import Workspace

TRAIN_SPLITS: tuple[str, ...] = ("train",)


def crosses_training(split_a: np.ndarray, split_b: np.ndarray, train: tuple[str, ...] = TRAIN_SPLITS) -> np.ndarray:
    """True where exactly one side of a pair is in a training split."""
    a = np.isin(np.asarray(split_a, dtype=object), list(train))
    b = np.isin(np.asarray(split_b, dtype=object), list(train))
    return a != b


def workspace_manifests(manifest: Manifest, workspace: Workspace) -> list[Manifest]:
    """``manifest`` first, then every other manifest of the workspace (by name)."""
    out = [manifest]
    for name in workspace.manifest_names():
        if name == manifest.name:
            continue
        out.append(read_manifest(workspace.manifest_path(name)))
    return out


def leaked_sample_ids(
    manifest: Manifest,
    *,
    workspace: Workspace | None = None,
    radius: int = dups.RADIUS,
    min_similarity: float = dups.MIN_SIMILARITY,
    workers: int | None = None,
) -> set[str]:
    """Sample ids of ``manifest`` that have a duplicate across the train / non-train boundary."""
    ws = workspace or Workspace.current()
    manifests = workspace_manifests(manifest, ws)
    layer = dups.read_dups_layer(manifest) if manifest.path is not None else None
    if layer is not None and dups.is_current(layer[1], manifests, radius=radius, min_similarity=min_similarity):
        table = layer[0]
        split = table.column("split").to_numpy(zero_copy_only=False)
        dup_split = table.column("dup_split").to_numpy(zero_copy_only=False)
        ids = np.asarray(table.column("sample_id").to_pylist(), dtype=object)
        in_ws = np.isin(table.column("dup_manifest").to_numpy(zero_copy_only=False), [m.name for m in manifests])
        return set(ids[crosses_training(split, dup_split) & in_ws].tolist())
    pool = dups.load_pool([m.path for m in manifests], workers=workers)
    pairs, _ = dups.duplicate_pairs(pool, radius=radius, min_similarity=min_similarity, workers=workers)
    a, b = pairs["a"].to_numpy(), pairs["b"].to_numpy()
    leak = crosses_training(pool.split[a], pool.split[b])
    rows = np.concatenate([a[leak], b[leak]])
    mine = pool.manifest[rows] == manifest.name
    return set(pool.sample_id[rows[mine]].tolist())


def leaked_table(manifest: Manifest, leaked: set[str]) -> pa.Table:
    """Leaked counts per split of ``manifest`` (split, rows, leaked), for summaries."""
    split = manifest.table.column("split").cast(pa.string()).to_numpy(zero_copy_only=False)
    ids = np.asarray(manifest.table.column("sample_id").to_pylist(), dtype=object)
    is_leaked = np.isin(ids, list(leaked)) if leaked else np.zeros(len(ids), dtype=bool)
    names = sorted(set(split.tolist()))
    return pa.table({
        "split": names,
        "rows": [int((split == s).sum()) for s in names],
        "leaked": [int((is_leaked & (split == s)).sum()) for s in names],
    })
