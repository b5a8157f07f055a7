"""Old import paths of moved names keep working and say where the name lives now."""

from __future__ import annotations

import types

import pytest

from fercurate.compat import moved_module


def _stub(names: dict[str, str] | None = None) -> types.ModuleType:
    stub = types.ModuleType("fercurate.old_home")
    stub.__getattr__ = moved_module("fercurate.old_home", "fercurate.workspace", names)  # type: ignore[attr-defined]
    return stub


def test_an_old_name_forwards_to_its_new_home_with_a_warning() -> None:
    from fercurate.workspace import Workspace

    with pytest.warns(DeprecationWarning, match=r"fercurate.old_home.Workspace moved to fercurate.workspace.Workspace"):
        assert _stub().Workspace is Workspace


def test_a_renamed_name_forwards_to_its_new_name() -> None:
    from fercurate.schema import CANONICAL_LABELS

    with pytest.warns(DeprecationWarning, match="fercurate.schema.CANONICAL_LABELS"):
        assert _stub({"LABELS": "fercurate.schema:CANONICAL_LABELS"}).LABELS is CANONICAL_LABELS


def test_an_unknown_name_is_an_attribute_error_naming_the_new_home() -> None:
    with pytest.raises(AttributeError, match="moved to 'fercurate.workspace'"):
        _stub().no_such_name  # noqa: B018
