"""``fercurate ingest <dataset> PATH``: native dataset layout -> Parquet manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from fercurate.cli import new_app, options
from fercurate.workspace import Workspace

ingest_app = new_app(
    "Ingest a dataset from its native on-disk layout into a manifest (+ a rejects table).\n\n"
    "Example: [bold]fercurate ingest ferplus /data/FERPlus -o manifests/ferplus.parquet[/bold]"
)


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


def _out(out: Path | None, workspace: Path | None, name: str) -> Path:
    return out or Workspace.current(workspace).manifest_path(name)


def _report(result) -> None:  # noqa: ANN001 - IngestResult
    typer.echo(result.summary())


@ingest_app.command("affectnet")
def affectnet(
    path: Path = typer.Argument(..., help="AffectNet root (holds Manually_Annotated_file_lists/)."),
    out: Path = options.OutManifest,
    verify: bool = options.Verify,
    workers: int = options.Workers,
    strict: bool = options.Strict,
    workspace: Path = options.Workspace,
    follow_links: bool = FollowLinks,
    max_pixels: int = MaxPixels,
    no_check_files: bool = typer.Option(
        False, "--no-check-files", help="Do not check that image files exist (CSV-only ingest)."
    ),
) -> None:
    """AffectNet: training.csv -> train, validation.csv -> test (the paper's test set).

    Example: fercurate ingest affectnet /data/AffectNet -o manifests/affectnet.parquet
    """
    from fercurate.ingest import affectnet as mod

    _report(
        mod.ingest(path, _out(out, workspace, "affectnet"), verify=verify, workers=workers,
                   strict=strict, check_files=not no_check_files, follow_links=follow_links,
                   max_pixels=max_pixels)
    )


@ingest_app.command("ferplus")
def ferplus(
    path: Path = typer.Argument(..., help="FERPlus root: FER2013{Train,Valid,Test}/ folders, or fer2013.csv + fer2013new.csv."),
    out: Path = options.OutManifest,
    layout: str = typer.Option("auto", help="folders | csv | auto (folders if FER2013Train/ exists)."),
    images_out: Path = typer.Option(
        None, "--images-out", help="csv layout: where to write the decoded PNGs (default: data/ferplus in the workspace)."
    ),
    verify: bool = options.Verify,
    workers: int = options.Workers,
    strict: bool = options.Strict,
    workspace: Path = options.Workspace,
    follow_links: bool = FollowLinks,
    max_pixels: int = MaxPixels,
) -> None:
    """FERPlus: majority-vote labels, all 10 vote counts kept; conflicts between vote files reported.

    Example: fercurate ingest ferplus /data/FERPlus -o manifests/ferplus.parquet
    """
    from fercurate.ingest import ferplus as mod

    ws = Workspace.current(workspace)
    _report(
        mod.ingest(path, _out(out, workspace, "ferplus"), layout=layout,
                   images_out=images_out or ws.root / "data" / "ferplus", verify=verify,
                   workers=workers, strict=strict, follow_links=follow_links, max_pixels=max_pixels)
    )


@ingest_app.command("rafdb")
def rafdb(
    path: Path = typer.Argument(..., help="RAF-DB basic root (holds EmoLabel/ and Image/)."),
    out: Path = options.OutManifest,
    images: str = typer.Option("aligned", help="aligned (Image/aligned/*_aligned.jpg) or original."),
    verify: bool = options.Verify,
    workers: int = options.Workers,
    strict: bool = options.Strict,
    workspace: Path = options.Workspace,
    follow_links: bool = FollowLinks,
    max_pixels: int = MaxPixels,
) -> None:
    """RAF-DB (basic): list_patition_label.txt, aligned or original images, optional landmarks/boxes.

    Example: fercurate ingest rafdb /data/RAF-DB/basic
    """
    from fercurate.ingest import rafdb as mod

    _report(
        mod.ingest(path, _out(out, workspace, "rafdb"), images=images, verify=verify,
                   workers=workers, strict=strict, follow_links=follow_links, max_pixels=max_pixels)
    )


@ingest_app.command("sfew")
def sfew(
    path: Path = typer.Argument(..., help="SFEW 2.0 root (holds Train/, Val/, optionally Test/)."),
    out: Path = options.OutManifest,
    aligned: str = typer.Option("auto", help="auto | yes | no: use the aligned-face variants where present."),
    verify: bool = options.Verify,
    workers: int = options.Workers,
    strict: bool = options.Strict,
    workspace: Path = options.Workspace,
    follow_links: bool = FollowLinks,
    max_pixels: int = MaxPixels,
) -> None:
    """SFEW 2.0: Train/ and Val/ by emotion folder; Test/ kept unlabelled.

    Example: fercurate ingest sfew /data/SFEW_2.0
    """
    from fercurate.ingest import sfew as mod

    _report(
        mod.ingest(path, _out(out, workspace, "sfew"), aligned=aligned, verify=verify,
                   workers=workers, strict=strict, follow_links=follow_links, max_pixels=max_pixels)
    )


def register(app: typer.Typer) -> None:
    app.add_typer(ingest_app, name="ingest")
