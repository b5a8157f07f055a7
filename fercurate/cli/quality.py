"""``fercurate quality dups|nonface|noise|report``: duplicates and leakage, non-faces, label noise."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fercurate.cli import new_app, options
from fercurate.workspace import Workspace

if TYPE_CHECKING:
    import pandas as pd

quality_app = new_app(
    "Data quality: exact/near duplicates and leakage across splits and datasets, non-face images, "
    "contested or likely wrong labels, and a report with contact sheets.\n\n"
    "Example: [bold]fercurate quality dups manifests/ferplus.parquet manifests/rafdb.parquet[/bold]"
)

AppView = typer.Option(
    None, "--app-view", help="Also save the flagged samples as this saved view of the manifest's FiftyOne App dataset."
)


@quality_app.command("dups")
def dups(
    manifests: list[str] = typer.Argument(..., help="Manifest paths or names (duplicates within and across them)."),
    radius: int = typer.Option(
        8, "--radius", min=0, max=16,
        help="Candidate perceptual-hash distance (bits of 64; larger finds more re-cropped copies, slower).",
    ),
    min_similarity: float = typer.Option(
        0.90, "--min-similarity", help="Aligned thumbnail correlation a candidate needs to count as a near duplicate."
    ),
    refresh: bool = typer.Option(False, "--refresh", help="Re-hash every image instead of reusing the hashes layer."),
    workers: int = options.Workers,
    workspace: Path = options.Workspace,
) -> None:
    """Find exact and near duplicates within and across manifests, and the leakage between splits.

    Writes manifests/<name>.dups.parquet per manifest, quality/duplicates.parquet (every pair) and
    quality/leakage.csv (e.g. how many test images also appear in train) in the workspace.

    Example: fercurate quality dups manifests/ferplus.parquet manifests/rafdb.parquet
    """
    from fercurate.quality.dups import find_duplicates

    ws = Workspace.choose(workspace, manifest=manifests[0] if manifests else None)
    result = find_duplicates(
        [ws.resolve_manifest(m) for m in manifests], radius=radius, min_similarity=min_similarity,
        workers=workers, refresh=refresh, workspace=ws,
    )
    typer.echo(result.summary())


@quality_app.command("nonface")
def nonface(
    manifest: str = typer.Argument(..., help="Manifest path or name."),
    split: list[str] = typer.Option([], "--split", help="Only these splits (repeatable)."),
    no_detect: bool = typer.Option(
        False, "--no-detect", help="Skip the face models: only NF votes, blank and unreadable images."
    ),
    no_pose: bool = typer.Option(False, "--no-pose", help="Run the face mesh here even if a pose layer exists."),
    app_view: str = AppView,
    workers: int = options.Workers,
    workspace: Path = options.Workspace,
) -> None:
    """Flag non-face images: FERPlus NF votes, blank images, and no face found by the face models.

    Example: fercurate quality nonface manifests/ferplus.parquet --app-view nonfaces
    """
    os.environ.setdefault("GLOG_minloglevel", "2")
    from fercurate.manifest import read_manifest
    from fercurate.quality.nonface import find_nonfaces

    ws = Workspace.choose(workspace, manifest=manifest)
    path = ws.resolve_manifest(manifest)
    m = read_manifest(path).where_split(*split)
    result = find_nonfaces(m, detect=not no_detect, use_pose=not no_pose, workers=workers)
    typer.echo(result.summary())
    if app_view:
        from fercurate.annotate.review import save_review_view

        df = result.table.to_pandas()
        ids = df.loc[df["flagged"], "sample_id"].tolist()
        name = save_review_view(path, app_view, ids, description="quality: non-face images", workspace=ws)
        typer.echo(f"saved view {app_view!r} ({len(ids):,} samples) in App dataset {name!r}")


@quality_app.command("noise")
def noise(
    manifest: str = typer.Argument(..., help="Manifest path or name."),
    probs: Path = typer.Option(
        None, "--probs", help="Out-of-sample class probabilities: Parquet/CSV with sample_id, prob_0..prob_K-1."
    ),
    model: Path = typer.Option(None, "--model", help="A trained RAN checkpoint: its probabilities are computed here."),
    split: str = typer.Option(
        None, "--split", help="With --model: only this split (use one the model did not train on, e.g. test)."
    ),
    app_view: str = AppView,
    workspace: Path = options.Workspace,
) -> None:
    """Contested labels (FERPlus vote agreement and entropy) and likely mislabels (confident learning).

    Example: fercurate quality noise manifests/ferplus.parquet --probs runs/ran/test_probs.parquet --app-view mislabels
    """
    from fercurate.errors import InputError
    from fercurate.manifest import read_manifest
    from fercurate.quality import noise as noise_mod

    if probs is not None and model is not None:
        raise InputError("pass --probs or --model, not both")
    ws = Workspace.choose(workspace, manifest=manifest)
    path = ws.resolve_manifest(manifest)
    m = read_manifest(path)
    table = None
    if probs is not None:
        table = noise_mod.read_probs(probs)
    elif model is not None:
        table = noise_mod.model_probs(model, m, split, predict=_ran_probs)
    result = noise_mod.label_noise(m, table)
    typer.echo(result.summary())
    if app_view:
        from fercurate.annotate.review import save_review_view

        ids = result.flagged_ids()
        name = save_review_view(path, app_view, ids, workspace=ws,
                                description="quality: likely mislabels (most likely first), then contested labels")
        typer.echo(f"saved view {app_view!r} ({len(ids):,} samples) in App dataset {name!r}")


def _ran_probs(model_path: str | os.PathLike, manifest_path: Path, split: str | None) -> pd.DataFrame:
    """``--model``: class probabilities from a RAN checkpoint (:func:`fercurate.ran.evaluate.predict_proba`)."""
    from fercurate.errors import InputError

    try:
        from fercurate.ran.evaluate import predict_proba
    except ImportError as exc:  # torch missing or broken
        raise InputError(f"--model needs the RAN evaluator, which cannot be imported here ({exc})") from exc
    return predict_proba(model_path, manifest_path, split)


@quality_app.command("report")
def report(
    manifests: list[str] = typer.Argument(None, help="Manifest paths or names (default: every manifest in the workspace)."),
    out: Path = typer.Option(Path("quality"), "--out", "-o", help="Output folder."),
    no_compute: bool = typer.Option(False, "--no-compute", help="Only report existing layers; compute nothing."),
    no_face_check: bool = typer.Option(
        False, "--no-face-check", help="When non-face layers are missing, skip the face models (votes/blank only)."
    ),
    sheet_size: int = typer.Option(48, "--sheet-size", help="Tiles per contact sheet.", min=1),
    workers: int = options.Workers,
    workspace: Path = options.Workspace,
) -> None:
    """Write tables (CSV/Parquet), contact sheets (PNG), summary.md and index.html for the quality checks.

    Example: fercurate quality report -o quality/
    """
    os.environ.setdefault("GLOG_minloglevel", "2")
    from fercurate.report.quality_page import build_quality_page

    result = build_quality_page(out, manifests or None, workspace=Workspace.choose(workspace, manifest=manifests[0] if manifests else None),
                                compute=not no_compute, face_check=not no_face_check, workers=workers,
                                sheet_size=sheet_size)
    typer.echo(result.summary())


def register(app: typer.Typer) -> None:
    app.add_typer(quality_app, name="quality")
