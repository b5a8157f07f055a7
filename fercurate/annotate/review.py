"""Opening flagged samples for review: a saved view in the manifest's FiftyOne App dataset (the quality
checks flag them, e.g. ``fercurate quality noise --app-view NAME``; this is the App side)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from fercurate.errors import InputError
from fercurate.manifest import read_manifest
from fercurate.workspace import Workspace


def save_review_view(
    manifest_path: str | os.PathLike,
    view_name: str,
    sample_ids: Sequence[str],
    *,
    description: str,
    workspace: Workspace | None = None,
) -> str:
    """Save ``sample_ids`` (in order) as view ``view_name`` of the manifest's App dataset; returns its name.

    The App dataset is created or refreshed by the annotation module (only the splits holding the
    flagged samples are added), so ``fercurate annotate launch`` then shows the view.
    """
    from fercurate.annotate.dataset import add_saved_view, ensure_dataset

    if not sample_ids:
        raise InputError(f"nothing flagged: no saved view {view_name!r} written")
    ws = workspace or Workspace.current()
    manifest = read_manifest(ws.resolve_manifest(manifest_path))
    wanted = set(sample_ids)
    ids = manifest.table.column("sample_id").to_pylist()
    splits = manifest.table.column("split").to_pylist()
    needed = sorted({s for i, s in zip(ids, splits) if i in wanted})
    ds = ensure_dataset(manifest.path, split=needed, workspace=ws)
    add_saved_view(ds, view_name, list(sample_ids), description=description)
    return ds.name
