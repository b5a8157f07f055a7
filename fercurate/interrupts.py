"""What a command has kept so far, for the one line Ctrl-C prints (``interrupted: ...``).

Every file fercurate writes is written whole or not at all (:mod:`fercurate.atomic`), so an
interrupted command leaves each file as it was or complete. Long stages say more while they run
(:func:`keeping`): which finished work is kept and how to continue from it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

NOTHING_HALF_WRITTEN = "no file was left half-written (each one is as it was or complete)"
_kept: list[Callable[[], str]] = []
_said: list[str] = []  # what the innermost stage said when the interrupt went through it


@contextlib.contextmanager
def keeping(what: str | Callable[[], str]) -> Iterator[None]:
    """While the block runs, an interrupt reports ``what`` (a text, or a function giving the current one)."""
    describe = what if callable(what) else (lambda: what)
    _kept.append(describe)
    try:
        yield
    except KeyboardInterrupt:
        if not _said:  # the innermost stage speaks; the ones around it have nothing to add
            _said.append(_describe(describe))
        raise
    finally:
        _kept.pop()


def kept() -> str:
    """The line for an interrupted command: what the interrupted stage keeps, else that no file was
    left half-written."""
    if _said:
        return _said.pop()
    return _describe(_kept[-1]) if _kept else NOTHING_HALF_WRITTEN


def _describe(describe: Callable[[], str]) -> str:
    try:
        return describe()
    except Exception:  # noqa: BLE001 - the stage's own state is gone: the general truth still holds
        return NOTHING_HALF_WRITTEN
