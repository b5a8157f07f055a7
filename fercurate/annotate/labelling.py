"""What the App plugin's batch actions do: label many selected faces at once in an annotator's dataset.

Each face goes through :func:`fercurate.annotate.session.save`, so a batch label replaces the
annotator's own earlier label (never adds to it), is written to the annotation file within seconds,
and can be undone. ``ids`` are FiftyOne sample ids, as the App hands them to the plugin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from fercurate.annotate import session
from fercurate.errors import InputError
from fercurate.schema import OCCLUSION_TYPES
from fercurate.workspace import Workspace

if TYPE_CHECKING:
    import fiftyone as fo


def _each(
    ds: "fo.Dataset",
    ids: Sequence[str],
    annotator: str,
    types_for: Callable[[dict], list[str] | None],
    fields: Sequence[str] = (),
    workspace: Workspace | None = None,
) -> int:
    """Save ``types_for(values)`` for each selected face (None: leave it); returns how many changed."""
    if not ids:
        raise InputError("no samples selected: select samples in the grid (or open one) first")
    view = ds.select(list(ids), ordered=True)
    names = ["sample_id", *fields]
    columns = view.values(names)
    changed = 0
    for i, sid in enumerate(columns[0]):
        types = types_for({f: columns[k][i] for k, f in enumerate(names)})
        if types is not None and session.save(ds, sid, types, annotator=annotator, workspace=workspace) is not None:
            changed += 1
    return changed


def set_types(ds: "fo.Dataset", ids: Sequence[str], types: Sequence[str], annotator: str, *,
              workspace: Workspace | None = None) -> int:
    """Label each selected face with exactly ``types`` (the six types; ``none`` alone).

    ``workspace``: the one the App server serves (checked against the dataset's; see
    :func:`fercurate.annotate.session.workspace_of`)."""
    chosen = sorted(set(types))
    bad = [t for t in chosen if t not in OCCLUSION_TYPES]
    if bad:
        raise InputError(f"occlusion type {bad[0]!r} is not one of {', '.join(OCCLUSION_TYPES)}")
    if not chosen:
        raise InputError("choose at least one occlusion type ('none' for no occlusion)")
    if "none" in chosen and len(chosen) > 1:
        raise InputError("'none' cannot be combined with other occlusion types")
    return _each(ds, ids, annotator, lambda _: chosen, workspace=workspace)


def clear(ds: "fo.Dataset", ids: Sequence[str], annotator: str, *, workspace: Workspace | None = None) -> int:
    """Withdraw the annotator's own label of each selected face (the history keeps both events)."""
    return _each(ds, ids, annotator, lambda _: [], workspace=workspace)


def accept_prefilled(ds: "fo.Dataset", ids: Sequence[str], annotator: str, *, source: str = "suggestion",
                     workspace: Workspace | None = None) -> int:
    """Confirm what is shown: the automatic suggestion (``source='suggestion'``) or the official
    label (``source='official'``) becomes the annotator's label.

    Faces with nothing to confirm, or an official value a person must resolve (``glasses|mask``,
    ``occluded``), are left unchanged.
    """
    field = {"suggestion": "occ_suggested", "official": "occlusion"}.get(source)
    if field is None:
        raise InputError(f"can only accept 'suggestion' or 'official' labels, not {source!r}")

    def pick(values: dict) -> list[str] | None:
        shown = values[field] or []
        if not shown or any(t not in OCCLUSION_TYPES for t in shown):
            return None
        if source == "official" and values["occlusion_source"] != "official":
            return None
        return sorted(set(shown))

    return _each(ds, ids, annotator, pick, fields=(field, "occlusion_source"), workspace=workspace)
