"""The faces the scorer sees: 48x48 grey crops (the FERPlus format), cut by :mod:`fercurate.faces.store`.

Other datasets are cropped to their face box and resized, the crop RAN's data uses, and the crops
are cached with RAN's (``<workspace>/cache/faces``, keyed apart as grey), so a re-run reads them back.
"""

from __future__ import annotations

import os

import numpy as np

from fercurate.faces.store import FaceRows, load_faces as load_store
from fercurate.manifest import Manifest
from fercurate.workspace import Workspace

FACE_SIZE = 48


def load_faces(
    manifest: Manifest, workers: int | None = None, workspace: Workspace | str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """48x48 grayscale face crops of every row (face box when the manifest has one), on all cores.

    Returns (faces (N, 48, 48) uint8, ok mask (N,), failures [(sample_id, reason)]); unreadable
    images are zeros in ``faces`` and rows in ``failures``, never silently dropped.
    """
    store = load_store(FaceRows.of(manifest), FACE_SIZE, grey=True, workers=workers, desc="loading faces",
                       workspace=workspace)
    ids = manifest.table.column("sample_id").to_pylist()
    failures = [(ids[i], reason.split(": ", 1)[-1]) for i, reason in sorted(store.failures.items())]
    return np.ascontiguousarray(store.faces[:, 0]), store.ok, failures


__all__ = ["FACE_SIZE", "load_faces"]
