"""``fercurate train`` and ``fercurate eval``: the RAN / ResNet-18 baseline trainer and evaluator.

``train``'s options are generated from :class:`fercurate.ran.config.TrainConfig` (one option per field,
with the field's help, flag and choices), so the CLI and the library cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from fercurate.cli import options
from fercurate.errors import InputError
from fercurate.ran.config import TrainConfig
from fercurate.workspace import Workspace


RESUME = options.keyword("resume", Optional[Path], typer.Option(
    None, "--resume", rich_help_panel="Run", help="Continue a run exactly from its checkpoint (or run folder)."))


@options.settings_command(TrainConfig, after=[RESUME, options.keyword("workspace", Optional[Path], options.Workspace)])
def train(**kwargs: Any) -> None:
    """Train RAN (or the ResNet-18 baseline) on a manifest split or subset.

    CUDA is used when present (mixed precision, channels_last), else the CPU. Several GPUs:
    torchrun --nproc_per_node N $(which fercurate) train ...  Writes <out>/<arch>.pt (resumable
    checkpoint), <arch>.best.pt (best validation epoch), metrics.jsonl and excluded.parquet.
    Every option is a field of fercurate.ran.config.TrainConfig, stored in the checkpoint.

    Paper-faithful preprocessing: --align dlib5 (5-point alignment), --crops landmark --landmark-scale 0.8
    --landmark-clip, or --crops random --random-crops 3.

    Example: fercurate train --manifest manifests/ferplus.parquet --split train --val-split val --pretrained resnet18_msceleb.pth --out runs/ran-ferplus
    """
    from fercurate.ran.train import train as run_train

    resume, workspace = kwargs.pop("resume"), kwargs.pop("workspace")
    ws = Workspace.current(workspace)
    given = options.setting_values(TrainConfig, kwargs)
    if resume is not None:
        result = run_train(TrainConfig(), resume=resume, overrides=given, workspace=ws, echo=typer.echo)
    else:
        if "manifest" not in given:
            raise InputError("--manifest is required (or --resume a run)")
        if "out" not in given:
            given["out"] = str(ws.runs / f"{given.get('arch', 'ran')}-{Path(given['manifest']).stem}")
        result = run_train(TrainConfig(**given), workspace=ws, echo=typer.echo)
    last = next((m for m in reversed(result.metrics) if m.get("event") == "epoch"), None)
    summary = f"done: {result.epochs_done} epochs on {result.train_samples:,} faces in {result.seconds:.0f}s -> {result.checkpoint}"
    if last and "val_acc" in last:
        summary += f" (last val acc {last['val_acc']:.4f})"
    typer.echo(summary)



LABELS_HELP = (
    "Order of a TorchScript/ONNX model's outputs, when the model carries none (a sidecar <model>.json, ONNX "
    "metadata 'fercurate.labels', TorchScript labels.txt). One of: a named order -- canonical (= affectnet: neutral, "
    "happy, sad, surprise, fear, disgust, anger, contempt), canonical7, fer2013 (angry, disgust, fear, happy, sad, "
    "surprise, neutral), ferplus (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt), rafdb "
    "(surprise, fear, disgust, happiness, sadness, anger, neutral), sfew (Angry Disgust Fear Happy Neutral Sad "
    "Surprise); a file, one class name per line (--labels classes.txt); or a comma list (--labels "
    "angry,disgust,fear,happy,sad,surprise,neutral). Aliases such as happiness, angry, surprised are accepted; "
    "outputs are permuted into canonical order before scoring."
)


def evaluate(
    model: Path = typer.Option(..., "--model", help="fercurate checkpoint (ran.pt), TorchScript file, or ONNX model (needs onnxruntime)."),
    manifest: str = typer.Option(None, "--manifest", "-m", help="Manifest path or name (default: the one the subsets belong to, else the model's)."),
    split: list[str] = typer.Option(None, "--split", help="Split(s) to score, each its own group (default: test when no --subset is given)."),
    subset: list[str] = typer.Option(None, "--subset", help="Subset(s) to score, each reported separately (repeatable). pose30 / pose45 / occlusion name the official RAN lists where imported; fercurate's own are pose45-estimated, occlusion-labelled."),
    report: Path = typer.Option(None, "--report", help="Report folder (default: <model folder>/eval/<model name>-<groups>, e.g. eval/ran-pose45)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing report in the report folder (default: refuse)."),
    save_probs: Path = typer.Option(None, "--save-probs", help="Write per-sample class probabilities (sample_id, prob_0.., canonical order) to this Parquet file."),
    draw_attention: int = typer.Option(0, "--draw-attention", help="Draw RAN's crop weights on N sample faces (attention.png)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the 95% confidence intervals (0 = none)."),
    batch_size: int = typer.Option(128, "--batch-size", "-b", help="Faces per forward pass."),
    input_size: int = typer.Option(None, "--input-size", help="TorchScript/ONNX models: input size H=W (default: from the model's contract, else 224)."),
    labels: str = typer.Option(None, "--labels", help=LABELS_HELP),
    input_norm: str = typer.Option(None, "--input-norm", help="TorchScript/ONNX input values: unit ([0,1] RGB, default) | imagenet (mean/std normalised)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    decode_workers: int = options.Workers,
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Cache decoded faces under <workspace>/cache/faces."),
    strict: bool = typer.Option(False, "--strict", help="Fail if any image cannot be read (default: report and skip those rows)."),
    workspace: Path = options.Workspace,
) -> None:
    """Score a model on a split and subsets: accuracy with 95% CI, per-class table, confusion matrices, attention.

    Prints one table, then for each group on a paper's test condition (an official RAN list, or the whole
    test split) the model's row placed among the published results with the same class count, each
    citing its paper and table. Writes metrics.json, report.txt, leaderboard.txt, confusion_<group>.png/.json,
    predictions.parquet (with RAN attention weights per crop) and excluded.parquet.

    Example: fercurate eval --model runs/ran-ferplus/ran.pt --subset pose45

    More examples:

      fercurate eval --model fer2013_model.onnx --labels fer2013 --manifest ferplus --split test

      fercurate eval --model model.pt --labels classes.txt --subset occlusion

      fercurate eval --model model.onnx --labels neutral,happiness,surprise,sadness,anger,disgust,fear,contempt --split test
    """
    from fercurate.ran.evaluate import evaluate as run_eval
    from fercurate.ran.evaluate import report_folder
    from fercurate.workspace import Workspace

    ws = Workspace.current(workspace)
    groups = list(split or []) + list(subset or []) or ["test"]
    run_eval(
        model, workspace=ws, manifest=manifest, splits=list(split or []), subsets=list(subset or []),
        report_dir=report or report_folder(model, groups), overwrite=overwrite, device=device, batch_size=batch_size,
        input_size=input_size, labels=labels, input_norm=input_norm, n_boot=bootstrap, save_probs=save_probs,
        draw_attention=draw_attention, workers=decode_workers, cache=cache, strict=strict, echo=typer.echo,
    )


def leaderboard(
    dataset: str = typer.Option(..., "--dataset", "-d", help="ferplus | affectnet | rafdb | sfew."),
    subset: str = typer.Option("test", "--subset", help="test | val (a whole split) | pose30 | pose45 | occlusion."),
    classes: int = typer.Option(None, "--classes", help="Only rows with this class count (7 or 8)."),
) -> None:
    """Published results on one dataset and subset, best first, each with its paper, table, backbone and pre-training.

    Example: fercurate leaderboard --subset pose45 --dataset ferplus
    """
    from fercurate import published

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
    app.command("train")(train)
    app.command("eval")(evaluate)
    app.command("leaderboard")(leaderboard)
