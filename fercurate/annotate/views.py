"""The App's saved views of a dataset: the standard labelling views, and any list of samples as a view.

Every launch (re)creates :data:`STANDARD_VIEWS` (:func:`ensure_standard_views`); other checks (e.g.
the quality review) save their own samples as a view with :func:`add_saved_view`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from fercurate.annotate.vocabulary import TAG_PREFIX
from fercurate.errors import InputError

if TYPE_CHECKING:
    import fiftyone as fo

# Saved views every launch (re)creates; names are what the App's view picker shows.
VIEW_UNLABELLED = "occlusion-unlabelled"
VIEW_BY_SUGGESTION = "occlusion-unlabelled-by-suggestion"
VIEW_OFFICIAL = "occlusion-official-to-review"
VIEW_CONFLICTS = "occlusion-conflicts"
STANDARD_VIEWS = (VIEW_UNLABELLED, VIEW_BY_SUGGESTION, VIEW_OFFICIAL, VIEW_CONFLICTS)


def unlabelled_view(ds: "fo.Dataset") -> "fo.DatasetView":
    """Samples with no person's label or adjudication yet and no ``occ:*`` tag set in the App."""
    from fiftyone import ViewField as F

    no_tag = F("tags").filter(F().starts_with(TAG_PREFIX)).length() == 0
    return ds.match(~F("occlusion_source").is_in(["human", "adjudication"]) & no_tag)


def ensure_standard_views(ds: "fo.Dataset") -> None:
    """(Re)create the saved views the labelling workflow uses."""
    from fiftyone import ViewField as F

    unlabelled = unlabelled_view(ds)
    views = {
        VIEW_UNLABELLED: (unlabelled, "No human occlusion label and no occ:* tag yet"),
        VIEW_BY_SUGGESTION: (
            unlabelled.sort_by("occ_score", reverse=True),
            "Unlabelled, most likely occluded first (automatic occlusion score)",
        ),
        VIEW_OFFICIAL: (
            ds.match(F("occlusion_source") == "official"),
            "Labels from the official RAN lists: confirm or correct (glasses|mask needs resolving)",
        ),
        VIEW_CONFLICTS: (ds.match(F("occlusion_conflict") == True), "Annotators disagree"),  # noqa: E712
    }
    for view_name, (view, description) in views.items():
        ds.save_view(view_name, view, description=description, overwrite=True)


def add_saved_view(
    dataset: "fo.Dataset",
    name: str,
    sample_ids: Iterable[str],
    *,
    description: str | None = None,
    ordered: bool = True,
) -> "fo.DatasetView":
    """Save a view of ``dataset`` holding exactly ``sample_ids`` (manifest ids), in that order.

    Overwrites a saved view of the same name, so re-running a check refreshes its view. Ids absent
    from the dataset raise InputError (add them first with :func:`ensure_dataset`). Example::

        ds = ensure_dataset("manifests/ferplus.parquet")
        add_saved_view(ds, "quality-flagged", flagged_ids, description="near-duplicates")
    """
    ids = list(dict.fromkeys(sample_ids))
    present = set(dataset.distinct("sample_id"))
    absent = [i for i in ids if i not in present]
    if absent:
        raise InputError(
            f"saved view {name!r}: {len(absent):,} sample ids are not in App dataset {dataset.name!r}, "
            f"e.g. {absent[0]}; run ensure_dataset for their manifest/split first"
        )
    view = dataset.select_by("sample_id", ids, ordered=ordered)
    dataset.save_view(name, view, description=description, overwrite=True)
    return view


__all__ = [
    "STANDARD_VIEWS",
    "VIEW_BY_SUGGESTION",
    "VIEW_CONFLICTS",
    "VIEW_OFFICIAL",
    "VIEW_UNLABELLED",
    "add_saved_view",
    "ensure_standard_views",
    "unlabelled_view",
]
