"""User-facing errors: the CLI prints their message as one line and exits non-zero."""

from __future__ import annotations


class FercurateError(Exception):
    """An error caused by the user's input or environment, with a message that says what to fix."""

    exit_code = 1


class InputError(FercurateError):
    """Bad input data: a missing file or column, an unreadable manifest, an unknown name."""


class RejectsError(FercurateError):
    """Rows were rejected and the caller asked for ``strict`` behaviour."""

    exit_code = 3
