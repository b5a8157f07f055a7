"""What the App plugin's buttons do to samples: set ``occ:*`` tags and record who pressed them, when.

The tags are the label; ``occ_by`` / ``occ_at`` say who labelled and when, so ``pull`` can write a
faithful history row. Nothing here touches the annotation table: that is ``pull``'s job, so a
mistaken click can still be fixed (or cleared) before it is collected. Tags outside the ``occ:``
namespace are never changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from fercurate.annotate.vocabulary import TAG_TO_TYPE, combine, is_occlusion_tag, type_tag
from fercurate.errors import InputError
from fercurate.schema import OCCLUSION_TYPES

if TYPE_CHECKING:
    import fiftyone as fo


def _current_types(tags: Iterable[str]) -> list[str]:
    return sorted(TAG_TO_TYPE[t] for t in tags if t in TAG_TO_TYPE)


def _rewrite(
    collection: "fo.SampleCollection",
    ids: Sequence[str],
    annotator: str | None,
    new_types: Callable[[list[str], dict], list[str] | None],
    extra_fields: Sequence[str] = (),
) -> int:
    """Apply ``new_types(current_types, sample_values)`` to each sample; returns how many changed."""
    if not ids:
        raise InputError("no samples selected: select samples in the grid (or open one) first")
    view = collection.select(list(ids))
    fields = ["tags", *extra_fields]
    values = view.values(fields)
    tags_list = values[0]
    when = datetime.now(timezone.utc)
    out_tags, out_by, out_at, changed = [], [], [], 0
    by_old, at_old = view.values(["occ_by", "occ_at"])
    for i, tags in enumerate(tags_list):
        tags = list(tags or [])
        extras = {f: values[1 + k][i] for k, f in enumerate(extra_fields)}
        types = new_types(_current_types(tags), extras)
        if types is None:
            out_tags.append(tags)
            out_by.append(by_old[i])
            out_at.append(at_old[i])
            continue
        kept = [t for t in tags if not is_occlusion_tag(t)]
        new = kept + [type_tag(t) for t in types]
        if sorted(new) != sorted(tags):
            changed += 1
        out_tags.append(new)
        out_by.append(annotator if types else None)
        out_at.append(when if types else None)
    view.set_values("tags", out_tags)
    view.set_values("occ_by", out_by)
    view.set_values("occ_at", out_at)
    return changed


def add_type(collection: "fo.SampleCollection", ids: Sequence[str], occlusion_type: str, annotator: str) -> int:
    """One button press: add ``occlusion_type`` to each sample (``none`` replaces all types)."""
    _check_annotator(annotator)
    if occlusion_type not in OCCLUSION_TYPES:
        raise InputError(f"occlusion type {occlusion_type!r} is not one of {', '.join(OCCLUSION_TYPES)}")
    return _rewrite(collection, ids, annotator, lambda cur, _: combine(cur, occlusion_type))


def set_types(collection: "fo.SampleCollection", ids: Sequence[str], types: Sequence[str], annotator: str) -> int:
    """Replace each sample's occlusion types with ``types`` (validated: the six types, ``none`` alone)."""
    _check_annotator(annotator)
    chosen = sorted(set(types))
    bad = [t for t in chosen if t not in OCCLUSION_TYPES]
    if bad:
        raise InputError(f"occlusion type {bad[0]!r} is not one of {', '.join(OCCLUSION_TYPES)}")
    if not chosen:
        raise InputError("choose at least one occlusion type ('none' for no occlusion)")
    if "none" in chosen and len(chosen) > 1:
        raise InputError("'none' cannot be combined with other occlusion types")
    return _rewrite(collection, ids, annotator, lambda cur, _: chosen)


def clear(collection: "fo.SampleCollection", ids: Sequence[str]) -> int:
    """Remove the ``occ:*`` tags (a label not pulled yet); pulled labels stay in the history."""
    return _rewrite(collection, ids, None, lambda cur, _: [])


def accept_prefilled(
    collection: "fo.SampleCollection", ids: Sequence[str], annotator: str, *, source: str = "suggestion"
) -> int:
    """Confirm what is shown: the automatic suggestion (``source='suggestion'``) or the current
    official label (``source='official'``) becomes this annotator's label.

    Samples with nothing to confirm, or an official value a person must resolve (``glasses|mask``,
    ``occluded``), are left unchanged.
    """
    _check_annotator(annotator)
    field = {"suggestion": "occ_suggested", "official": "occlusion"}.get(source)
    if field is None:
        raise InputError(f"can only accept 'suggestion' or 'official' labels, not {source!r}")

    def pick(cur: list[str], extras: dict) -> list[str] | None:
        shown = extras[field] or []
        if not shown or any(t not in OCCLUSION_TYPES for t in shown):
            return None
        if source == "official" and extras["occlusion_source"] != "official":
            return None
        return sorted(set(shown))

    return _rewrite(collection, ids, annotator, pick, extra_fields=(field, "occlusion_source"))


def _check_annotator(annotator: str | None) -> None:
    if not annotator or not str(annotator).strip():
        raise InputError("no annotator name: launch with 'fercurate annotate launch ... --annotator NAME'")
