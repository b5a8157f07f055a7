"""``fercurate eval`` (score a model, placed among the published results) and ``fercurate leaderboard``.

``eval``'s options are generated from :class:`fercurate.ran.config.EvalConfig` (one option per field,
with the field's help, flag and choices), as ``train``'s are from ``TrainConfig``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

import typer

from fercurate.cli import options
from fercurate.errors import InputError
from fercurate.ran.config import EvalConfig
from fercurate.workspace import Workspace

MODEL = options.keyword("model", Path, typer.Option(
    ..., "--model", help="fercurate checkpoint (ran.pt), TorchScript file, or ONNX model (needs onnxruntime)."))
WORKSPACE = options.keyword("workspace", Optional[Path], options.Workspace)


@options.settings_command(EvalConfig, before=[MODEL], after=[WORKSPACE])
def evaluate(**given: Any) -> None:
    """Score a model on a split and subsets: accuracy with 95% CI, per-class table, confusion matrices, attention.

    Prints one table, then for each group on a paper's test condition (an official RAN list, or the whole
    test split) the model's row placed among the published results with the same class count, each
    citing its paper and table. Writes metrics.json, report.txt, leaderboard.txt, confusion_<group>.png/.json,
    predictions.parquet (with RAN attention weights per crop) and excluded.parquet.
    Every option but --model and --workspace is a field of fercurate.ran.config.EvalConfig.

    A TorchScript or ONNX model is fed and read by its contract (--labels, --input-size, --channels, --layout,
    --input-norm, --outputs, or the same keys in a sidecar <model file>.json or inside the file), checked
    against the model before any face is scored; a value nothing gives is an error, never a guess. On
    FERPlus, --label-rule says which vote-labelled faces count (default: FER+'s majority rule). The report
    goes into the workspace: runs/<run>/eval/... for a model under runs/, else eval/....

    Example: fercurate eval --model runs/ran-ferplus/ran.pt --subset pose45

    More examples:

      fercurate eval --model fer2013_model.onnx --labels fer2013 --input-norm signed --outputs logits --split test

      fercurate eval --model model.pt --labels classes.txt --input-size 224 --input-norm imagenet --outputs logits --subset occlusion

      fercurate eval --model ferplus.onnx --labels ferplus --channels gray --label-rule plurality --manifest ferplus --split test
    """
    from fercurate.ran.eval_report import report_folder
    from fercurate.ran.evaluate import evaluate as run_eval

    model, workspace = given.pop("model"), given.pop("workspace")
    config = EvalConfig(**options.setting_values(EvalConfig, given))
    ws = Workspace.choose(workspace, manifest=config.manifest)
    if config.report_dir is None:
        groups = [*config.splits, *config.subsets] or ["test"]
        config = dataclasses.replace(config, report_dir=str(report_folder(model, groups, ws)))
    run_eval(model, config, workspace=ws, echo=typer.echo)


def leaderboard(
    dataset: str = typer.Option(..., "--dataset", "-d", help="ferplus | affectnet | rafdb | sfew."),
    subset: str = typer.Option("test", "--subset", help="test | val (a whole split) | pose30 | pose45 | occlusion."),
    classes: int = typer.Option(None, "--classes", help="Only rows with this class count (7 or 8)."),
    workspace: Path = options.Workspace,
) -> None:
    """Published results on one dataset and subset, best first, each with its paper, table, backbone and pre-training.

    The table ships with fercurate; -w is accepted as on every command, and nothing is read from it.

    Example: fercurate leaderboard --subset pose45 --dataset ferplus
    """
    from fercurate import published

    del workspace  # the published table is fercurate's own
    rows = published.leaderboard(dataset.lower(), subset.lower(), classes)
    size = published.subset_size(dataset.lower(), subset.lower())
    title = f"{subset} on {dataset}" + (f" ({classes} classes)" if classes else "") + \
        (f"; published size {size[0]} ({size[1]})" if size else "")
    if not rows:
        known = sorted({(r.dataset, r.subset) for r in published.RESULTS})
        raise InputError(f"no published result for dataset {dataset!r}, subset {subset!r}"
                         + (f", {classes} classes" if classes else "") + "; known: "
                         + ", ".join(f"{d}/{s}" for d, s in known))
    typer.echo(published.format_leaderboard(rows, title=title))


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
    app.command("leaderboard")(leaderboard)
