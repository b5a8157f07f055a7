"""``fercurate import-ran-lists DIR --manifest M``: the RAN authors' official subset lists onto a manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from fercurate.cli import options
from fercurate.workspace import Workspace


def import_ran_lists(
    lists_dir: Path = typer.Argument(
        ..., help="Folder of the published lists (FERplus_dir/, AffectNet_dir/, RAF_DB_dir/, val_ferplus_mn.txt)."
    ),
    manifest: str = typer.Option(..., "--manifest", "-m", help="Manifest path or name (ferplus, affectnet or rafdb)."),
    strict: bool = typer.Option(False, "--strict", help="Fail (exit 3) if any list line is unmatched or malformed."),
    workspace: Path = options.Workspace,
) -> None:
    """Import the official RAN Pose/Occlusion/aligned lists of the manifest's dataset.

    Writes the official layer (manifests/<name>.official.parquet), a table of the lines not
    imported (.official.unmatched.parquet), occlusion labels as 'official' events in
    annotations/<name>.occlusion.parquet, and the official-<list> subsets.

    Example: fercurate import-ran-lists ../shared/data/ran_lists --manifest manifests/ferplus.parquet
    """
    from fercurate.subsets.official import import_ran_lists as run

    ws = Workspace.choose(workspace, manifest=manifest)
    result = run(lists_dir, ws.resolve_manifest(manifest), workspace=ws, strict=strict)
    typer.echo(result.summary())


def register(app: typer.Typer) -> None:
    app.command("import-ran-lists")(import_ran_lists)
