"""``fercurate ingest <dataset> PATH``: native dataset layout -> Parquet manifest."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fercurate.cli import new_app, options

if TYPE_CHECKING:
    from fercurate.ingest import IngestOptions, IngestResult

ingest_app = new_app(
    "Ingest a dataset from its native on-disk layout into a manifest (+ a rejects table).\n\n"
    "Example: [bold]fercurate ingest ferplus /data/FERPlus -o manifests/ferplus.parquet[/bold]"
)


def _report(result: IngestResult) -> None:
    typer.echo(result.summary())


@ingest_app.command("affectnet")
@options.ingest_options
def affectnet(
    path: Path = typer.Argument(..., help="AffectNet root (holds Manually_Annotated_file_lists/)."),
    no_check_files: bool = typer.Option(
        False, "--no-check-files", help="Do not check that image files exist (CSV-only ingest)."
    ),
    *,
    out: Path | None,
    options: IngestOptions,
) -> None:
    """AffectNet: training.csv -> train, validation.csv -> test (the paper's test set).

    Example: fercurate ingest affectnet /data/AffectNet -o manifests/affectnet.parquet
    """
    from fercurate.ingest import affectnet as mod

    _report(mod.ingest(path, out, options=options, check_files=not no_check_files))


@ingest_app.command("ferplus")
@options.ingest_options
def ferplus(
    path: Path = typer.Argument(..., help="FERPlus root: FER2013{Train,Valid,Test}/ folders, or fer2013.csv + fer2013new.csv."),
    layout: str = typer.Option("auto", help="folders | csv | auto (folders if FER2013Train/ exists)."),
    images_out: Path = typer.Option(
        None, "--images-out", help="csv layout: where to write the decoded PNGs (default: data/ferplus in the workspace)."
    ),
    *,
    out: Path | None,
    options: IngestOptions,
) -> None:
    """FERPlus: majority-vote labels, all 10 vote counts kept; conflicts between vote files reported.

    Example: fercurate ingest ferplus /data/FERPlus -o manifests/ferplus.parquet
    """
    from fercurate.ingest import ferplus as mod

    _report(mod.ingest(path, out, layout=layout, images_out=images_out, options=options))


@ingest_app.command("rafdb")
@options.ingest_options
def rafdb(
    path: Path = typer.Argument(..., help="RAF-DB basic root (holds EmoLabel/ and Image/)."),
    images: str = typer.Option("aligned", help="aligned (Image/aligned/*_aligned.jpg) or original."),
    *,
    out: Path | None,
    options: IngestOptions,
) -> None:
    """RAF-DB (basic): list_patition_label.txt, aligned or original images, optional landmarks/boxes.

    Example: fercurate ingest rafdb /data/RAF-DB/basic
    """
    from fercurate.ingest import rafdb as mod

    _report(mod.ingest(path, out, images=images, options=options))


@ingest_app.command("sfew")
@options.ingest_options
def sfew(
    path: Path = typer.Argument(..., help="SFEW 2.0 root (holds Train/, Val/, optionally Test/)."),
    aligned: str = typer.Option("auto", help="auto | yes | no: use the aligned-face variants where present."),
    *,
    out: Path | None,
    options: IngestOptions,
) -> None:
    """SFEW 2.0: Train/ and Val/ by emotion folder; Test/ kept unlabelled.

    Example: fercurate ingest sfew /data/SFEW_2.0
    """
    from fercurate.ingest import sfew as mod

    _report(mod.ingest(path, out, aligned=aligned, options=options))


def register(app: typer.Typer) -> None:
    app.add_typer(ingest_app, name="ingest")
