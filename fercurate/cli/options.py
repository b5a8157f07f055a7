"""Options several commands share, so they read and behave the same everywhere.

Commands whose settings are a dataclass (``fercurate train``: :class:`fercurate.ran.config.TrainConfig`,
``fercurate eval``: :class:`fercurate.ran.config.EvalConfig`) get their options generated from its
fields (:func:`settings_command`), so the CLI and the library cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional, TypeVar

import typer

from fercurate.errors import InputError
from fercurate.settings import option_name

Command = TypeVar("Command", bound=Callable[..., Any])


# --- options generated from a settings dataclass ---------------------------------------------------------


def _cli_type(settings: type, f: dataclasses.Field, hint: Any) -> Any:
    """The CLI type of a settings field: every option is optional (None = not given); a union's CLI type is
    its first member (``str | list[str] | None`` -> ``str``)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) else hint
    if typing.get_origin(base) is list:
        return Optional[list[str]] if f.metadata.get("repeat") else Optional[str]
    if base not in (bool, int, float, str):
        raise TypeError(f"{settings.__name__}.{f.name}: no command-line form for type {hint!r}")
    return Optional[base]


def _help(f: dataclasses.Field) -> str:
    text = f.metadata.get("help", "")
    choices = f.metadata.get("choices")
    if choices and "|" not in text:
        text += f" [{' | '.join(map(str, choices))}]"
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    if default not in (None, [], "") and not isinstance(default, bool):
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        text += f" (default: {shown})"
    elif isinstance(default, bool):
        text += f" (default: {'on' if default else 'off'})"
    return text


def _option(f: dataclasses.Field, cli_type: Any) -> Any:
    flag = option_name(f)
    if cli_type is Optional[bool]:
        flag = f"{flag}/--no-{flag[2:]}"
    decls = [flag] + ([f.metadata["short"]] if f.metadata.get("short") else [])
    return typer.Option(None, *decls, help=_help(f), show_default=False, min=f.metadata.get("minimum"),
                        rich_help_panel=f.metadata.get("panel"))


def keyword(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    """A command parameter that is no settings field (``--resume``, ``--workspace``)."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def setting_parameters(settings: type) -> list[inspect.Parameter]:
    """One option per field of a settings dataclass (fields made with :func:`fercurate.settings.setting`),
    in declaration order, with the field's flag, help, default and choices."""
    hints = typing.get_type_hints(settings)
    params = []
    for f in dataclasses.fields(settings):
        cli_type = _cli_type(settings, f, hints[f.name])
        params.append(keyword(f.name, cli_type, _option(f, cli_type)))
    return params


def setting_values(settings: type, given: dict[str, Any]) -> dict[str, Any]:
    """CLI values -> keyword arguments of ``settings``: options not given are left out, lists parsed."""
    hints = typing.get_type_hints(settings)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = given.get(f.name)
        if value is None or (isinstance(value, (list, tuple)) and not value):
            continue
        if f.metadata.get("csv"):
            items = [v.strip() for v in str(value).split(",") if v.strip()]
            if int in typing.get_args(hints[f.name]):
                try:
                    items = [int(v) for v in items]
                except ValueError as exc:
                    raise InputError(f"{option_name(f)} takes comma-separated integers, e.g. 15,30 (got {value!r})") from exc
            value = items
        elif isinstance(value, (list, tuple)):
            value = list(value)
        elif isinstance(value, Path):
            value = str(value)
        out[f.name] = value
    return out


def settings_command(settings: type, *, before: Sequence[inspect.Parameter] = (),
                     after: Sequence[inspect.Parameter] = ()) -> Callable[[Command], Command]:
    """Give a command taking ``**given`` one option per field of ``settings`` (after ``before``, then
    ``after``), so the command line and the library share one list of settings."""

    def apply(command: Command) -> Command:
        params = [*before, *setting_parameters(settings), *after]
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return apply


# --- options several commands share ----------------------------------------------------------------------

Workers = typer.Option(
    None, "--workers", "-j", help="Worker processes for per-image work (default: all cores).", min=1
)
Verify = typer.Option(
    False, "--verify", help="Decode every image (all cores) and record width, height and sha256."
)
Strict = typer.Option(False, "--strict", help="Fail (exit 3) if any row is rejected.")
Workspace = typer.Option(
    None,
    "--workspace",
    "-w",
    envvar="FERCURATE_WORKSPACE",
    help="Workspace folder holding manifests/, annotations/, runs/ (default: current folder).",
)
OutManifest = typer.Option(
    None, "--out", "-o", help="Manifest to write (default: manifests/<dataset>.parquet in the workspace)."
)

OptionalPath = Optional[Path]


# --- the options every ``fercurate ingest <dataset>`` command shares ---------------------------------
# Declared once: :func:`ingest_options` adds them to a command, which receives them as ``out`` and one
# ``fercurate.ingest.IngestOptions`` value (``options``), the value every dataset's ingest() takes.

FollowLinks = typer.Option(
    False,
    "--follow-links",
    help="Accept images that are symlinks (or sit in symlinked folders) resolving outside the dataset root; "
    "by default such rows are rejected ('links outside the dataset root').",
)
MaxPixels = typer.Option(
    None,
    "--max-pixels",
    min=1,
    help="Reject images larger than this many pixels, read from the file header before decoding "
    "(default 50,000,000, or $FERCURATE_MAX_PIXELS): guards against decompression bombs.",
)
INGEST_OPTIONS: tuple[tuple[str, Any, Any], ...] = (  # (parameter, type, typer option)
    ("out", Optional[Path], OutManifest),
    ("verify", bool, Verify),
    ("workers", Optional[int], Workers),
    ("strict", bool, Strict),
    ("workspace", Optional[Path], Workspace),
    ("follow_links", bool, FollowLinks),
    ("max_pixels", Optional[int], MaxPixels),
)


def ingest_options(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` with the shared ingest options on its command line.

    ``command`` declares only its dataset's arguments and options plus ``out`` and ``options``
    (keyword-only, filled in here). Typer reads the parameters from the signature, so the wrapper's
    signature is the command's arguments, ``--out``, the command's own options, then the other
    shared options (the order of ``--help``).
    """
    keyword = inspect.Parameter.KEYWORD_ONLY  # typer passes every parameter by name
    own = [p.replace(kind=keyword) for p in inspect.signature(command).parameters.values()
           if p.name not in ("out", "options")]
    arguments = [p for p in own if isinstance(p.default, typer.models.ArgumentInfo)]
    shared = {name: inspect.Parameter(name, keyword, default=option, annotation=kind)
              for name, kind, option in INGEST_OPTIONS}
    order = [*arguments, shared.pop("out"), *(p for p in own if p not in arguments), *shared.values()]

    @functools.wraps(command)
    def wrapper(**values: Any) -> None:
        from fercurate.ingest.options import IngestOptions
        from fercurate.workspace import Workspace as WorkspaceFolder

        given = {name: values.pop(name) for name, _, _ in INGEST_OPTIONS}
        out = given.pop("out")
        workspace = WorkspaceFolder.choose(given.pop("workspace"), manifest=out)
        command(**values, out=out, options=IngestOptions(**given, workspace=workspace))

    wrapper.__signature__ = inspect.Signature(order)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {
        **{p.name: command.__annotations__[p.name] for p in own if p.name in command.__annotations__},
        **{name: kind for name, kind, _ in INGEST_OPTIONS},
    }
    return wrapper
