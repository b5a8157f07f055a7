"""Subset names: the papers' names, the affixes that keep official lists and fercurate's own apart, lookup.

Naming follows the papers: ``pose30`` / ``pose45`` / ``occlusion`` (and ``occlusion-upper`` ...) are
the RAN authors' official lists where imported (``official-*``); subsets fercurate computes carry a
suffix, ``pose45-estimated`` (the pose layer) and ``occlusion-labelled`` (labels from the App), so a
paper figure is only ever shown beside the list it was measured on.
"""

from __future__ import annotations

import re
from pathlib import Path

from fercurate.errors import InputError
from fercurate.subsets.store import (
    SubsetInfo,
    list_subsets,
    read_subset_info,
    scan_subsets,
    subset_file_name,
    subset_ids,
)
from fercurate.workspace import Workspace

# The official RAN lists, as imported by ``fercurate import-ran-lists`` (see fercurate.subsets.official).
OFFICIAL_PREFIX = "official-"
OFFICIAL_RULE = "official RAN list: "
# Names a reader of the papers types: where the official list is imported they resolve to it
# (``pose45`` -> ``official-pose45``); fercurate's own subsets carry a suffix (``pose45-estimated``,
# ``occlusion-labelled``) so a paper figure is only ever shown beside the list it was measured on.
PAPER_NAMES: tuple[str, ...] = ("pose30", "pose45", "occlusion", "occlusion-upper", "occlusion-bottom",
                                "occlusion-left_right", "occlusion-glasses-or-mask")
ESTIMATED_SUFFIX = "-estimated"
LABELLED_NAME = "occlusion-labelled"


def find_subset(
    subset: str, *, manifest: str | None = None, workspace: Workspace | None = None
) -> SubsetInfo:
    """Resolve a subset by file path or by name (and manifest name, when several manifests have it).

    The papers' names (``pose30``, ``pose45``, ``occlusion``, ``occlusion-<type>``), and the name of any
    other imported list (``aligned-test``), resolve to the official list (``official-pose45``) where it
    is imported; a subset literally named so is used only
    for a manifest without that official list; otherwise the error says how to import the list and
    names fercurate's own subset (``pose45-estimated``, ``occlusion-labelled``).
    """
    if subset.endswith(".parquet"):
        path = Path(subset)
        if not path.exists():
            raise InputError(f"{path}: subset file not found")
        return read_subset_info(path)
    name = subset_file_name(subset)
    every, unreadable = scan_subsets(workspace, manifest)
    matches = [s for s in every if s.name == name]
    official = [s for s in every if s.name == OFFICIAL_PREFIX + name]
    if official:
        # any imported list answers to its own name (pose45, aligned-test, ...); the official list wins, and
        # a subset literally named so (older fercurate, a user's own) is used only for manifests without it
        have = {s.manifest for s in official}
        matches = official + [s for s in matches if s.manifest not in have]
    if len(matches) == 1:
        return matches[0]
    where = f" for manifest {manifest!r}" if manifest else ""
    if not matches:
        wanted = (name, OFFICIAL_PREFIX + name) if name in PAPER_NAMES else (name,)
        damaged = [u for u in unreadable if any(u.path.stem.endswith(f"-{w}") for w in wanted)]
        if damaged:
            raise InputError(f"subset {name!r}{where} cannot be read: {damaged[0]}; build it again "
                             "('fercurate subsets build', or 'fercurate import-ran-lists' for an official list)")
        known = sorted({s.name for s in every})
        hint = f" (known: {', '.join(known)})" if known else " (none built yet: run 'fercurate subsets build')"
        if name in PAPER_NAMES:
            ours = name.replace("occlusion", LABELLED_NAME, 1) if name.startswith("occlusion") else name + ESTIMATED_SUFFIX
            raise InputError(
                f"no official list {name!r}{where}: {name!r} names the RAN authors' published list; import it with "
                f"'fercurate import-ran-lists DIR --manifest M', or score fercurate's own subset {ours!r}{hint}")
        raise InputError(f"no subset named {name!r}{where}{hint}")
    names = ", ".join(sorted(s.manifest for s in matches))
    raise InputError(f"subset {name!r} exists for several manifests ({names}): pass --manifest")


def paper_condition(info: SubsetInfo) -> str | None:
    """The paper condition an official list was measured on (``pose45``, ``occlusion-upper`` ...), else None.

    Only a subset built from an official RAN list has one; fercurate's estimated or labelled subsets,
    samples and ``-clean`` variants of a list do not, so no paper figure is shown beside them.
    """
    if not info.rule.startswith(OFFICIAL_RULE):
        return None
    cond = info.rule[len(OFFICIAL_RULE):].strip()
    return cond if cond in ("pose30", "pose45", "occlusion") or cond.startswith("occlusion-") else None


def paper_name(name: str) -> str:
    """The paper's subset a subset name stands for: ``official-pose45``, ``pose45-estimated``,
    ``pose45-openface``, ``pose45-estimated-clean`` -> ``pose45``; ``occlusion-labelled-upper`` ->
    ``occlusion-upper`` (one of :data:`PAPER_NAMES` when it is one of the papers' subsets)."""
    base = re.sub(r"-(estimated|openface|clean|sample)(-.*)?$", "", name.removeprefix(OFFICIAL_PREFIX))
    return base.replace(LABELLED_NAME, "occlusion", 1)


def compare_with_official(info: SubsetInfo, workspace: Workspace | None = None) -> str | None:
    """For an estimated/labelled subset, one line: the official list's size, ours, and their overlap."""
    if not (info.name.endswith(ESTIMATED_SUFFIX) or info.name.startswith(LABELLED_NAME)):
        return None
    base = paper_name(info.name)
    if base not in PAPER_NAMES:
        return None
    official = [s for s in list_subsets(workspace, info.manifest) if s.name == OFFICIAL_PREFIX + base]
    if not official:
        return None
    ours, theirs = subset_ids(info), subset_ids(official[0])
    return (f"{info.name}: official list {base} has {len(theirs):,}, ours {len(ours):,}, overlap {len(ours & theirs):,} "
            f"({official[0].name})")

