"""``fercurate info MANIFEST``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from fercurate.cli import options
from fercurate.workspace import Workspace


def info(
    manifest: str = typer.Argument(..., help="Manifest path or name (e.g. ferplus)."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    workspace: Path = options.Workspace,
) -> None:
    """Counts per split x label, rejects, flags, layers and schema version of a manifest.

    Example: fercurate info manifests/ferplus.parquet
    """
    from fercurate.info import manifest_info

    result = manifest_info(Workspace.choose(workspace, manifest=manifest).resolve_manifest(manifest))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        typer.echo(result.render())


def register(app: typer.Typer) -> None:
    app.command("info")(info)
