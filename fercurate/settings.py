"""Settings dataclasses whose fields describe themselves: :func:`setting` and what reads it.

A run's settings are one dataclass (:class:`fercurate.ran.config.TrainConfig`,
:class:`fercurate.ran.config.EvalConfig`) whose fields are made with :func:`setting`: the default plus
the help text, command-line flag and choices. The library reads the values; :mod:`fercurate.cli.options`
turns the same fields into a command's options, so a setting is named and explained once. This module
imports nothing heavy, so any config can use it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fercurate.errors import InputError


def setting(default: Any = None, help: str = "", *, flag: str | None = None, short: str | None = None,  # noqa: A002
            choices: tuple | None = None, csv: bool = False, repeat: bool = False, factory: Any = None,
            minimum: float | None = None, panel: str | None = None) -> Any:
    """A settings field with its command-line description.

    ``flag`` overrides the option name (default ``--field-name``); ``csv`` takes a list as one
    comma-separated value (``--milestones 15,30``), ``repeat`` as a repeatable option (``--split a
    --split b``); ``minimum`` is checked on the command line; ``panel`` groups the option in ``--help``.
    """
    meta = {"help": help, "flag": flag, "short": short, "choices": choices, "csv": csv, "repeat": repeat,
            "minimum": minimum, "panel": panel}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def option_name(f: dataclasses.Field) -> str:
    """The command-line flag of a settings field (``--classes`` for ``num_classes``, ...)."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def check_choices(settings: Any) -> None:
    """Raise an :class:`InputError` naming the option when a field's value is not one of its choices."""
    for f in dataclasses.fields(settings):
        choices = f.metadata.get("choices")
        value = getattr(settings, f.name)
        if choices and value not in choices:
            names = [str(c) for c in choices]
            allowed = " or ".join(names) if len(names) == 2 else "one of " + ", ".join(names)
            raise InputError(f"{option_name(f)} must be {allowed} (got {value!r})")
