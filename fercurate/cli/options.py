"""Options several commands share, so they read and behave the same everywhere."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import typer

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
        out, workspace = given.pop("out"), WorkspaceFolder.current(given.pop("workspace"))
        command(**values, out=out, options=IngestOptions(**given, workspace=workspace))

    wrapper.__signature__ = inspect.Signature(order)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {
        **{p.name: command.__annotations__[p.name] for p in own if p.name in command.__annotations__},
        **{name: kind for name, kind, _ in INGEST_OPTIONS},
    }
    return wrapper
