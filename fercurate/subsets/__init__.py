"""Subsets: named sets of a manifest's samples (Pose-30, Occlusion, official lists, ...) with provenance.

:mod:`.store` writes, reads and lists subset files; :mod:`.names` holds the papers' names and finds a
subset by name; :mod:`.rules` builds subsets by rule (pose, occlusion labels, leak-free copies);
:mod:`.official` imports the RAN authors' official lists (read by :mod:`.list_files`) and builds their
``official-*`` subsets. Every name below is also ``fercurate.subsets.<name>``.

Naming follows the papers: ``pose30`` / ``pose45`` / ``occlusion`` (and ``occlusion-upper`` ...) are
the RAN authors' official lists where imported (``official-*``); subsets fercurate computes carry a
suffix, ``pose45-estimated`` (the pose layer) and ``occlusion-labelled`` (labels from the App), so a
paper figure is only ever shown beside the list it was measured on.
"""

from __future__ import annotations

from fercurate.subsets.list_files import FERPLUS_OCCLUSION_CODES, LIST_SPECS, ListStats, occlusion_types
from fercurate.subsets.names import (
    ESTIMATED_SUFFIX,
    LABELLED_NAME,
    OFFICIAL_PREFIX,
    OFFICIAL_RULE,
    PAPER_NAMES,
    compare_with_official,
    find_subset,
    paper_condition,
    paper_name,
)
from fercurate.subsets.official import OFFICIAL_LAYER, ImportResult, import_ran_lists, official_subsets, read_official
from fercurate.subsets.rules import build, occlusion_subsets, pose_subsets
from fercurate.subsets.store import (
    SUBSET_SCHEMA,
    SubsetInfo,
    Unreadable,
    list_subsets,
    read_subset,
    read_subset_info,
    scan_subsets,
    subset_file_name,
    subset_ids,
    subset_path,
    write_subset,
)

__all__ = [
    "ESTIMATED_SUFFIX", "FERPLUS_OCCLUSION_CODES", "ImportResult", "LABELLED_NAME", "LIST_SPECS", "ListStats",
    "OFFICIAL_LAYER", "OFFICIAL_PREFIX", "OFFICIAL_RULE", "PAPER_NAMES", "SUBSET_SCHEMA", "SubsetInfo", "build",
    "compare_with_official", "find_subset", "import_ran_lists", "list_subsets", "occlusion_subsets",
    "occlusion_types", "official_subsets", "paper_condition", "paper_name", "pose_subsets", "read_official",
    "read_subset", "read_subset_info", "scan_subsets", "subset_file_name", "subset_ids", "subset_path", "Unreadable",
    "write_subset",
]
