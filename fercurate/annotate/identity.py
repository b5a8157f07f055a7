"""Annotator identity: the default annotator name and the variable naming an App server's one annotator.

Kept apart from the App launcher (:mod:`fercurate.annotate.app`) so that the commands below it
(``adjudicate``'s default adjudicator, the plugin) can ask without importing the launcher.
"""

from __future__ import annotations

import getpass
import os

ANNOTATOR_ENV = "FERCURATE_ANNOTATOR"
# Set in an App server's environment: the one annotator that server labels for.
APP_ANNOTATOR_ENV = "FERCURATE_APP_ANNOTATOR"


def default_annotator() -> str:
    """``$FERCURATE_ANNOTATOR``, else the login name."""
    name = os.environ.get(ANNOTATOR_ENV) or os.environ.get("USER") or os.environ.get("USERNAME")
    if not name:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            name = ""
    return name


__all__ = ["ANNOTATOR_ENV", "APP_ANNOTATOR_ENV", "default_annotator"]
