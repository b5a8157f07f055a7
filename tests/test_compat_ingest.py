"""Names that left ``fercurate.ingest`` (issue 30) still import from their old paths, with a warning."""

from __future__ import annotations

import importlib
import re

import pytest

_RESULT = ("IngestResult", "finish")
_REJECTS = ("Rejects", "printable", "is_utf8_name", "non_utf8_reason")
_PATHS = ("unsafe_path_reason", "as_string_array", "check_paths", "first_duplicates", "require_dir")
_FILES = ("MISSING", "FILE", "FOLDER", "OUTSIDE", "BROKEN_LINK", "FileScan", "scan_files", "existing_files",
          "oversized_images", "verify_images")
_OFFICIAL = ("ANNOTATOR", "LABELLED_AT", "OFFICIAL_SCHEMA", "UNMATCHED_SCHEMA", "ImportResult", "import_ran_lists",
             "read_official")
_LIST_FILES = ("LIST_NAMES", "LABEL_ORDERS", "FERPLUS_OCCLUSION_CODES", "ListSpec", "LIST_SPECS", "KNOWN_OTHER_FILES",
               "DATASET_FOLDERS", "ListStats", "occlusion_types")
_VOTES = ("N_VOTES", "UNKNOWN_INDEX", "NF_INDEX", "FERPLUS_TO_CANONICAL", "FLAG_UNKNOWN", "FLAG_NF", "FLAG_TIE",
          "majority_labels", "vote_targets", "votes_array", "parse_votes")

MOVED = [
    *(("fercurate.ingest.common", n, "fercurate.ingest.result") for n in _RESULT),
    *(("fercurate.ingest.common", n, "fercurate.ingest.rejects") for n in _REJECTS),
    *(("fercurate.ingest.common", n, "fercurate.ingest.paths") for n in _PATHS),
    *(("fercurate.ingest.common", n, "fercurate.ingest.files") for n in _FILES),
    *(("fercurate.ingest.ran_lists", n, "fercurate.subsets.official") for n in _OFFICIAL),
    *(("fercurate.ingest.ran_lists", n, "fercurate.subsets.list_files") for n in _LIST_FILES),
    *(("fercurate.ingest.ferplus", n, "fercurate.votes") for n in _VOTES),
]


@pytest.mark.parametrize(("old", "name", "new"), MOVED, ids=[f"{o}.{n}" for o, n, _ in MOVED])
def test_a_moved_name_imports_from_its_old_path(old: str, name: str, new: str) -> None:
    namespace: dict = {}
    with pytest.warns(DeprecationWarning, match=re.escape(f"{old}.{name} moved to {new}.{name}")):
        exec(f"from {old} import {name}", namespace)  # noqa: S102 - the import statement is what is tested
    assert namespace[name] is getattr(importlib.import_module(new), name)


def test_the_ferplus_ingest_keeps_its_own_names_without_a_warning(recwarn: pytest.WarningsRecorder) -> None:
    from fercurate.ingest import ferplus

    for name in ferplus.__all__:
        getattr(ferplus, name)
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]
