"""Annotator identity: the default annotator name, and a name as it may appear in dataset and database names.

Kept apart from the App launcher (:mod:`fercurate.annotate.app`) so that the modules below it
(``adjudicate``'s default adjudicator, the plugin, the database) can ask without importing the launcher.
"""

from __future__ import annotations

import getpass
import os
import re

from fercurate.errors import InputError

ANNOTATOR_ENV = "FERCURATE_ANNOTATOR"
_NAME_OK = re.compile(r"[^A-Za-z0-9_.-]+")


def default_annotator() -> str:
    """``$FERCURATE_ANNOTATOR``, else the login name."""
    name = os.environ.get(ANNOTATOR_ENV) or os.environ.get("USER") or os.environ.get("USERNAME")
    if not name:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            name = ""
    return name


def annotator_slug(annotator: str) -> str:
    """The annotator's name as it can appear in a dataset name (other characters become ``_``)."""
    who = (annotator or "").strip()
    if not who:
        raise InputError("an annotator name is needed (pass --annotator NAME or set $USER)")
    return _NAME_OK.sub("_", who)


__all__ = ["ANNOTATOR_ENV", "annotator_slug", "default_annotator"]
