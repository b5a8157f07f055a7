"""``fercurate pose MANIFEST``: head pose for every image -> ``manifests/<name>.pose.parquet``."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from fercurate.cli import options
from fercurate.workspace import Workspace

METHOD_HELP = (
    "Estimator: mediapipe (default: face mesh + mean 3D mesh, Procrustes), mediapipe-pnp, dlib "
    "(68 points + robust PnP), dlib-6point (the generic 6-point baseline)."
)


def pose(
    manifest: str = typer.Argument(..., help="Manifest path or name."),
    workers: int = options.Workers,
    resume: bool = typer.Option(
        False, "--resume", help="Keep the chunks an interrupted identical run already finished; compute the rest."
    ),
    method: str = typer.Option("mediapipe", "--method", "-m", help=METHOD_HELP),
    chunk_size: int = typer.Option(256, "--chunk-size", help="Images per checkpointed chunk.", min=1),
    split: list[str] = typer.Option([], "--split", "-s", help="Only rows of this split (repeatable); default all."),
    root: Path = typer.Option(None, "--root", help="Dataset root to read images from (overrides the manifest's)."),
    workspace: Path = options.Workspace,
) -> None:
    """Estimate head pose (yaw, pitch, roll in degrees) for every image of a manifest.

    Angles follow AFLW2000-3D / 300W-LP: yaw > 0 when the face turns toward the image's left edge,
    pitch > 0 chin up, roll > 0 clockwise in the image. Uses the manifest's face box where it has one,
    otherwise detects the face. Failures (missing/unreadable image, no face) become rows with a reason.

    Example: fercurate pose manifests/ferplus.parquet --workers 2 --resume
    """
    os.environ.setdefault("GLOG_minloglevel", "2")  # silence MediaPipe's C++ start-up chatter
    from fercurate.pose.runner import run_pose

    ws = Workspace.choose(workspace, manifest=manifest)
    summary = run_pose(
        ws.resolve_manifest(manifest), method=method, workers=workers, resume=resume,
        chunk_size=chunk_size, root=root, splits=split,
    )
    for line in summary.lines():
        typer.echo(line)
    if summary.total and summary.failures.get("image missing", 0) == summary.total:
        typer.secho(
            f"warning: none of the {summary.total:,} images exist on disk: is the dataset root right? (pass --root DIR)",
            err=True, fg="yellow",
        )


def register(app: typer.Typer) -> None:
    app.command("pose")(pose)
