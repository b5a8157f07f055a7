"""``fercurate subsets build|list``."""

from __future__ import annotations

from pathlib import Path

import typer

from fercurate.cli import new_app, options
from fercurate.workspace import Workspace

subsets_app = new_app(
    "Build and list subsets (Pose-30/45, Occlusion, official RAN lists, leak-free splits).\n\n"
    "Example: [bold]fercurate subsets build manifests/ferplus.parquet --pose 30 --pose 45[/bold]"
)


@subsets_app.command("build")
def build(
    manifest: str = typer.Argument(..., help="Manifest path or name."),
    pose: list[float] = typer.Option([], "--pose", help="Pose-T subset poseT-estimated: max(|yaw|,|pitch|) > T degrees from fercurate's pose layer (repeatable)."),
    calibration: str = typer.Option(
        None, "--calibration", help="Compare a calibrated pose score instead of raw angles (e.g. 'openface' = paper-compatible)."
    ),
    occlusion: bool = typer.Option(False, "--occlusion", help="occlusion-labelled subset + one per occlusion type, from annotations/."),
    official: bool = typer.Option(False, "--official", help="One subset per imported official RAN list (official-*; the names pose30/pose45/occlusion resolve to them)."),
    exclude_leaked: bool = typer.Option(
        False, "--exclude-leaked", help="Also write <subset>-clean and <split>-clean without samples leaked across splits/datasets."
    ),
    workspace: Path = options.Workspace,
) -> None:
    """Build subsets of a manifest into manifests/subsets/ (with provenance).

    Example: fercurate subsets build manifests/ferplus.parquet --pose 30 --pose 45 --occlusion
    """
    from fercurate import subsets

    ws = Workspace.choose(workspace, manifest=manifest)
    built = subsets.build(
        ws.resolve_manifest(manifest), pose=pose, calibration=calibration, occlusion=occlusion,
        official=official, exclude_leaked=exclude_leaked, workspace=ws,
    )
    for info in built:
        typer.echo(f"{info.line()}  -> {info.path}")
    for info in built:
        line = subsets.compare_with_official(info, ws)
        if line:
            typer.echo(line)


@subsets_app.command("list")
def list_(
    manifest: str = typer.Option(None, "--manifest", "-m", help="Only subsets of this manifest (name)."),
    workspace: Path = options.Workspace,
) -> None:
    """List subsets: name, rule, size, dataset.

    Example: fercurate subsets list
    """
    from fercurate import subsets

    found, unreadable = subsets.scan_subsets(Workspace.current(workspace), manifest)
    for bad in unreadable:
        typer.secho(f"cannot read: {bad}", err=True, fg="yellow")
    if not found:
        typer.echo("no readable subsets" if unreadable
                   else "no subsets yet: run 'fercurate subsets build MANIFEST --pose 30 ...'")
        return
    typer.echo(f"{'name':<28} {'rule':<48} {'size':>7}  dataset (manifest)")
    for info in found:
        typer.echo(info.line())


def register(app: typer.Typer) -> None:
    app.add_typer(subsets_app, name="subsets")
