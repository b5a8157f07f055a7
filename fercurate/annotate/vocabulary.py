"""The App's occlusion tag vocabulary: ``occ:<type>`` sample tags for the six RAN occlusion types.

Tags are how a label made in the FiftyOne App travels back to the annotation table: the plugin's
buttons set them, and a person can also type them in the App's own tag menu. Only the six types are
taken from the App (the unresolved official values such as ``glasses|mask`` are for lists, not
people); anything else that looks like an occlusion tag is reported by ``pull`` and never taken.
This module is pure Python so the plugin, ``pull`` and the tests share one definition.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fercurate.schema import OCCLUSION_TYPES, OCCLUSION_UNRESOLVED

TAG_PREFIX = "occ:"
TAGS: tuple[str, ...] = tuple(f"{TAG_PREFIX}{t}" for t in OCCLUSION_TYPES)
TAG_TO_TYPE: dict[str, str] = {f"{TAG_PREFIX}{t}": t for t in OCCLUSION_TYPES}
# Human-friendly names for the App's buttons, one per type of schema.OCCLUSION_TYPES (the paper's order).
TYPE_LABELS: dict[str, str] = dict(
    zip(OCCLUSION_TYPES, ("Mask", "Glasses", "Left/right face", "Upper face", "Bottom face", "No occlusion"), strict=True)
)
# Bare words people may type instead of the prefixed tag: reported with a hint, never taken.
_LOOKALIKES = {t.lower() for t in OCCLUSION_TYPES} | {"left-right", "leftright"} | set(OCCLUSION_UNRESOLVED)


@dataclass(frozen=True)
class ParsedTags:
    """What a sample's tags say about occlusion: the valid types, or why they can't be taken."""

    types: tuple[str, ...]
    problem: str | None = None


def type_tag(occlusion_type: str) -> str:
    """``mask`` -> ``occ:mask`` (raises ValueError for a type outside the six)."""
    if occlusion_type not in OCCLUSION_TYPES:
        raise ValueError(f"occlusion type {occlusion_type!r} is not one of {', '.join(OCCLUSION_TYPES)}")
    return f"{TAG_PREFIX}{occlusion_type}"


def is_occlusion_tag(tag: str) -> bool:
    """True for any tag in the ``occ:`` namespace (valid or not)."""
    return tag.startswith(TAG_PREFIX)


def occlusion_tags(tags: Iterable[str]) -> list[str]:
    """The ``occ:*`` tags among ``tags``, sorted."""
    return sorted(t for t in set(tags) if is_occlusion_tag(t))


def lookalike(tag: str) -> str | None:
    """A hint when a plain tag looks like a misspelt occlusion tag (e.g. ``mask`` -> ``occ:mask``)."""
    low = tag.strip().lower()
    if low in _LOOKALIKES:
        guess = low.replace("-", "_")
        if guess in TAG_TO_TYPE.values():
            return f"did you mean {TAG_PREFIX}{guess}?"
        return f"use one of {', '.join(TAGS)}"
    return None


def parse_tags(tags: Iterable[str]) -> ParsedTags:
    """The occlusion types a sample's ``occ:*`` tags give, or the reason they are not a valid label.

    A valid label is one or more of the five types, or ``none`` alone.
    """
    occ = occlusion_tags(tags)
    unknown = [t for t in occ if t not in TAG_TO_TYPE]
    if unknown:
        return ParsedTags((), f"tag {unknown[0]!r} is not in the vocabulary ({', '.join(TAGS)})")
    types = tuple(sorted(TAG_TO_TYPE[t] for t in occ))
    if "none" in types and len(types) > 1:
        return ParsedTags(types, f"{TAG_PREFIX}none cannot be combined with other occlusion tags {list(occ)}")
    return ParsedTags(types)


def combine(current: Iterable[str], add: str) -> list[str]:
    """The types after pressing one type's button: ``none`` replaces everything, a type replaces ``none``."""
    if add not in OCCLUSION_TYPES:
        raise ValueError(f"occlusion type {add!r} is not one of {', '.join(OCCLUSION_TYPES)}")
    if add == "none":
        return ["none"]
    kept = {t for t in current if t in OCCLUSION_TYPES and t != "none"}
    return sorted(kept | {add})
