"""Old import paths of names that moved: they keep working, with a ``DeprecationWarning`` naming the new home.

A module that moved leaves a two-line stub at its old path::

    from fercurate.compat import moved_module
    __getattr__ = moved_module(__name__, "fercurate.subsets.official")

The new module is imported only when an old name is first used, so a stub adds no import edge (and no
import cycle) to the package, and code that imports from the new home never pays for it.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any


def moved_module(old: str, new: str, names: dict[str, str] | None = None) -> Callable[[str], Any]:
    """A module ``__getattr__`` forwarding ``old.NAME`` to ``new.NAME`` (or to ``names[NAME]``, a
    ``"module:attribute"`` for names that moved elsewhere or were renamed), warning once per use."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        target_module, _, target_name = (names or {}).get(name, f"{new}:{name}").partition(":")
        module = importlib.import_module(target_module)
        try:
            value = getattr(module, target_name or name)
        except AttributeError:
            raise AttributeError(f"module {old!r} has no attribute {name!r} (it moved to {new!r})") from None
        warnings.warn(f"{old}.{name} moved to {target_module}.{target_name or name}; import it from there",
                      DeprecationWarning, stacklevel=2)
        return value

    return __getattr__
