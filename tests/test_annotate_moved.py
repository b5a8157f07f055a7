"""Names that moved out of fercurate.annotate (issue 30) still import from their old paths, with a warning."""

from __future__ import annotations

import importlib

import pytest

MOVED = [
    # (old module, name, new module, new name)
    ("fercurate.annotate.app", "default_annotator", "fercurate.annotate.identity", "default_annotator"),
    ("fercurate.annotate.app", "APP_ANNOTATOR_ENV", "fercurate.annotate.identity", "APP_ANNOTATOR_ENV"),
    ("fercurate.annotate.app", "free_port", "fercurate.annotate.network", "free_port"),
]


@pytest.mark.parametrize("old,name,new,new_name", MOVED, ids=[f"{o}.{n}" for o, n, _, _ in MOVED])
def test_a_moved_name_imports_from_its_old_path_with_a_deprecation_warning(old: str, name: str, new: str,
                                                                           new_name: str) -> None:
    target = getattr(importlib.import_module(new), new_name)
    with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} moved to {new}\.{new_name}"):
        value = getattr(importlib.import_module(old), name)
    assert value is target
