"""``fercurate synth mask|occlude|preview``: synthetic masked / occluded variants of a manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from fercurate.cli import new_app, options
from fercurate.workspace import Workspace

synth_app = new_app(
    "Make synthetic masked / occluded variants of a manifest, with provenance.\n\n"
    "Each variant is a manifest row pointing back at its parent (derived_from, variant, seed) plus "
    "a 'synthetic' occlusion event, so Occlusion subsets and evaluation pick it up.\n\n"
    "Example: [bold]fercurate synth mask manifests/ferplus.parquet --split test --out data/ferplus-masked[/bold]"
)

Split = typer.Option([], "--split", "-s", help="Only rows of this split (repeatable or comma-separated).")
Out = typer.Option(None, "--out", help="Folder for the new images (default: data/<name> in the workspace).")
Name = typer.Option(None, "--name", help="Name of the new manifest (default: <parent>-masked / <parent>-occluded).")
Seed = typer.Option(0, "--seed", help="Run seed; each image's seed is derived from it and the sample_id.")
PerImage = typer.Option(
    1, "--per-image", "-n", min=1, help="Variants per parent image (random styles, distinct when possible)."
)
Each = typer.Option(
    False, "--each", help="One variant per listed style/type for every parent (instead of one random pick)."
)
Resume = typer.Option(
    False, "--resume", help="Keep images already written (and still readable) by an earlier run of the same settings."
)
Limit = typer.Option(None, "--limit", min=1, help="Only the first N rows (after --split): for a quick look.")
Methods = typer.Option(
    "mediapipe,dlib", "--landmarks", help="Landmark methods to try, in order (mediapipe, dlib)."
)
LandmarkMode = typer.Option(
    "fast", "--landmark-mode",
    help="fast: 468-point mesh, one pass (default); accurate: 478-point attention mesh, two passes (~2.5x slower).",
)
NoFallback = typer.Option(
    False, "--no-fallback",
    help="Reject faces no landmark method finds, instead of placing the mean face shape in the face box "
    "(the fallback is only ever used where the manifest gives a face box or is an aligned-crop dataset).",
)
Faces = typer.Option(
    "all", "--faces",
    help="Pictures without a face box: draw on all faces the detectors find (all), or the largest only. "
    "Pictures 640 px or larger are also searched for small faces (BlazeFace on tiles; each such face "
    "counts only if the face mesh confirms it). A picture with no face found becomes a failure row, never a mask.",
)


def _splits(values: list[str]) -> list[str]:
    return [s.strip() for v in values for s in v.split(",") if s.strip()]


def _report(result) -> None:  # noqa: ANN001 - runner.SynthResult
    typer.echo(result.summary())


@synth_app.command("mask")
def mask(
    manifest: str = typer.Argument(..., help="Parent manifest path or name."),
    style: str = typer.Option(
        "surgical,cloth,n95,kn95", "--style",
        help="Mask styles: surgical, cloth, n95, kn95, and/or style names from --templates "
        "(a template named like a built-in style wins).",
    ),
    color: str = typer.Option("", "--color", help="Allowed colours (comma-separated; default: each style's palette)."),
    texture: str = typer.Option(
        "", "--texture", help="Allowed textures: pleated, plain, stripes, checks, dots, valve."
    ),
    templates: Optional[Path] = typer.Option(
        None, "--templates", help="MaskTheFace-style masks.cfg of RGBA templates with anchors mask_a..mask_f."
    ),
    split: list[str] = Split,
    out: Optional[Path] = Out,
    name: Optional[str] = Name,
    seed: int = Seed,
    per_image: int = PerImage,
    each: bool = Each,
    resume: bool = Resume,
    limit: Optional[int] = Limit,
    landmarks: str = Methods,
    landmark_mode: str = LandmarkMode,
    no_fallback: bool = NoFallback,
    faces: str = Faces,
    workers: Optional[int] = options.Workers,
    workspace: Optional[Path] = options.Workspace,
) -> None:
    """Draw face masks on every face of a manifest: new images + manifests/<name>.parquet.

    Masks follow 68 landmarks from nose bridge to chin along the jaw; grayscale stays grayscale.

    Faces: the row's face box, the whole picture for aligned-crop datasets (FERPlus, RAF-DB aligned),
    else every face the detectors find (--faces largest: one), one row per face.

    Landmarks: MediaPipe, else dlib, else (face box or aligned crop only) the mean face in the box,
    marked placement=fallback in the provenance layer.

    Example: fercurate synth mask manifests/ferplus.parquet --split test --style surgical,cloth,n95,kn95 --out data/ferplus-masked

    Example: fercurate synth mask manifests/photos.parquet --faces all --out data/photos-masked
    """
    from fercurate.synth.runner import SynthConfig, run

    config = SynthConfig(
        kind="mask", styles=(style,), colours=(color,), textures=(texture,),
        templates=str(templates) if templates else None, per_image=per_image, each=each, seed=seed,
        methods=tuple(m.strip() for m in landmarks.split(",") if m.strip()), fallback=not no_fallback,
        landmark_mode=landmark_mode, faces=faces,
    )
    ws = Workspace.choose(workspace, manifest=manifest)
    result = run(
        ws.resolve_manifest(manifest), config, out_dir=out, name=name, splits=_splits(split), limit=limit,
        resume=resume, workers=workers, workspace=ws,
    )
    _report(result)


@synth_app.command("occlude")
def occlude(
    manifest: str = typer.Argument(..., help="Parent manifest path or name."),
    type_: str = typer.Option(
        "glasses,upper,bottom,left_right", "--type",
        help="Occluder types (the RAN taxonomy): glasses, upper, bottom, left_right."
    ),
    size: Optional[float] = typer.Option(
        None, "--size",
        help="Covered fraction of the face: of its height for upper/bottom, of its width for left_right "
        "(default 0.4 / 0.45 / 0.4). Glasses are sized to the eyes.",
    ),
    shape: str = typer.Option(
        "", "--shape", help="Allowed shapes: hand, scarf, object (glasses: glasses, sunglasses)."
    ),
    color: str = typer.Option("", "--color", help="Allowed colours for scarves, objects and frames."),
    split: list[str] = Split,
    out: Optional[Path] = Out,
    name: Optional[str] = Name,
    seed: int = Seed,
    per_image: int = PerImage,
    each: bool = Each,
    resume: bool = Resume,
    limit: Optional[int] = Limit,
    landmarks: str = Methods,
    landmark_mode: str = LandmarkMode,
    no_fallback: bool = NoFallback,
    faces: str = Faces,
    workers: Optional[int] = options.Workers,
    workspace: Optional[Path] = options.Workspace,
) -> None:
    """Draw RAN-taxonomy occluders (glasses, upper/bottom face, left/right side) on every face.

    Example: fercurate synth occlude manifests/rafdb.parquet --type glasses,upper,bottom,left_right --size 0.3 --out data/rafdb-occluded
    """
    from fercurate.synth.runner import SynthConfig, run

    config = SynthConfig(
        kind="occlude", styles=(type_,), shapes=(shape,), colours=(color,), size=size, per_image=per_image,
        each=each, seed=seed, methods=tuple(m.strip() for m in landmarks.split(",") if m.strip()),
        fallback=not no_fallback, landmark_mode=landmark_mode, faces=faces,
    )
    ws = Workspace.choose(workspace, manifest=manifest)
    result = run(
        ws.resolve_manifest(manifest), config, out_dir=out, name=name, splits=_splits(split), limit=limit,
        resume=resume, workers=workers, workspace=ws,
    )
    _report(result)


@synth_app.command("preview")
def preview(
    manifest: str = typer.Argument(..., help="A synthetic manifest (made by synth mask/occlude), path or name."),
    out: Path = typer.Option(..., "--out", "-o", help="Contact sheet to write (.png or .jpg)."),
    n: int = typer.Option(24, "--n", min=1, help="Number of parent | variant pairs."),
    columns: int = typer.Option(4, "--columns", min=1, help="Pairs per row."),
    tile: int = typer.Option(128, "--tile", min=32, help="Tile size in pixels (small faces are enlarged pixel-exact)."),
    variant: Optional[str] = typer.Option(None, "--variant", help="Only variants containing this text, e.g. 'n95'."),
    method: Optional[str] = typer.Option(
        None, "--method", help="Only rows placed by this landmark method, e.g. 'prior'."
    ),
    parent: Optional[Path] = typer.Option(
        None, "--parent", help="Parent manifest (default: the one recorded in the manifest)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the random choice of rows."),
    workspace: Optional[Path] = options.Workspace,
) -> None:
    """Contact sheet of parent | variant pairs with captions (variant, label, landmark method).

    Example: fercurate synth preview manifests/ferplus-masked.parquet -o sheet.png
    """
    from fercurate.synth.preview import contact_sheet

    ws = Workspace.choose(workspace, manifest=manifest)
    result = contact_sheet(
        ws.resolve_manifest(manifest), out, n=n, columns=columns, tile=tile, seed=seed, variant=variant,
        method=method, parent=parent,
    )
    missing = f" ({result.missing} images missing)" if result.missing else ""
    typer.echo(f"{result.pairs} pairs -> {result.path}{missing}")


def register(app: typer.Typer) -> None:
    app.add_typer(synth_app, name="synth")
