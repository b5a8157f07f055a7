"""``fercurate train`` and ``fercurate eval``: the RAN / ResNet-18 baseline trainer and evaluator."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from fercurate.cli import options
from fercurate.errors import InputError


def _csv_ints(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise InputError(f"--milestones must be comma-separated epochs, e.g. 15,30 (got {value!r})") from exc


def train(
    manifest: str = typer.Option(None, "--manifest", "-m", help="Manifest path or name (e.g. manifests/ferplus.parquet)."),
    split: list[str] = typer.Option(None, "--split", help="Split(s) to train on (repeatable; default: train)."),
    subset: str = typer.Option(None, "--subset", help="Train only on this subset of the manifest (name or file)."),
    val_split: list[str] = typer.Option(None, "--val-split", help="Split(s) scored after every epoch (best epoch kept as *.best.pt)."),
    val_subset: str = typer.Option(None, "--val-subset", help="Validate on this subset instead of / within --val-split."),
    out: Path = typer.Option(None, "--out", "-o", help="Run folder (default: runs/<arch>-<manifest>)."),
    arch: str = typer.Option(None, "--arch", help="ran (default) | baseline (plain ResNet-18 on the whole face)."),
    variant: str = typer.Option(None, "--variant", help="paper (default) | official-code: the authors' code (softmax attention, margin 0.1, no input normalisation, lr 0.1, its crop boxes)."),
    crops: str = typer.Option(None, "--crops", help="fixed (the paper's 5 regions, default) | random | landmark (manifest landmarks)."),
    classes: int = typer.Option(None, "--classes", help="8 (default) or 7 (contempt dropped)."),
    targets: str = typer.Option(None, "--targets", help="majority (default) | votes (FER+ vote distributions)."),
    epochs: int = typer.Option(None, "--epochs", help="Epochs (paper: 40)."),
    batch_size: int = typer.Option(None, "--batch-size", "-b", help="Global batch size (default 64)."),
    lr: float = typer.Option(None, "--lr", help="Initial learning rate (paper 0.01; official-code 0.1)."),
    momentum: float = typer.Option(None, "--momentum", help="SGD momentum (0.9)."),
    nesterov: Optional[bool] = typer.Option(None, "--nesterov/--no-nesterov", help="Nesterov momentum (off)."),
    weight_decay: float = typer.Option(None, "--weight-decay", help="Weight decay (1e-4)."),
    schedule: str = typer.Option(None, "--schedule", help="step (lr x gamma at --milestones, default) | cosine."),
    milestones: str = typer.Option(None, "--milestones", help="Epochs where the step schedule divides the lr (paper: 15,30)."),
    gamma: float = typer.Option(None, "--gamma", help="Step-schedule factor (0.1)."),
    warmup_epochs: float = typer.Option(None, "--warmup-epochs", help="Linear lr warm-up, in epochs (0)."),
    input_size: int = typer.Option(None, "--input-size", help="Backbone input size of every crop (paper: 224)."),
    face_size: int = typer.Option(None, "--face-size", help="Size faces are decoded/cached at (default: the input size)."),
    stem: str = typer.Option(None, "--stem", help="imagenet (7x7/2 conv + max-pool, default) | no-maxpool (small faces)."),
    rb_margin: float = typer.Option(None, "--rb-margin", help="RB-loss margin alpha (paper 0.02; official-code 0.1)."),
    rb_weight: float = typer.Option(None, "--rb-weight", help="Weight of the RB-loss next to cross-entropy (1)."),
    label_smoothing: float = typer.Option(None, "--label-smoothing", help="Label smoothing for majority targets (0)."),
    augment: Optional[bool] = typer.Option(None, "--augment/--no-augment", help="Flip/rotate/zoom/shift augmentation (on)."),
    rotate: float = typer.Option(None, "--rotate", help="Max rotation in degrees (10)."),
    translate: float = typer.Option(None, "--translate", help="Max shift, fraction of the face (0.08)."),
    erase: float = typer.Option(None, "--erase", help="Random-erasing probability (0)."),
    pretrained: Path = typer.Option(None, "--pretrained", help="ResNet-18 .pth (torchvision names; ImageNet or MS-Celeb-1M) for the backbone."),
    pretrained_head: Optional[bool] = typer.Option(None, "--pretrained-head/--no-pretrained-head", help="Also start the classifier from --pretrained, a fercurate checkpoint with the same labels (a baseline's FC is split over RAN's [F_i : F_m]); off: fresh head."),
    freeze: str = typer.Option(None, "--freeze", help="Backbone stages to keep fixed, comma-separated: stem,layer1,layer2,layer3,layer4 (none)."),
    seed: int = typer.Option(None, "--seed", help="Seed of the data order, augmentation and initialisation (0)."),
    limit: int = typer.Option(None, "--limit", help="Use only N training faces (a seeded sample), for quick trials."),
    workers: int = typer.Option(None, "--loader-workers", help="DataLoader worker processes (0: cached faces are sliced in-process)."),
    decode_workers: int = options.Workers,
    cache: Optional[bool] = typer.Option(None, "--cache/--no-cache", help="Cache decoded faces under <workspace>/cache/faces (on)."),
    cache_dir: Path = typer.Option(None, "--cache-dir", help="Where the face cache lives."),
    device: str = typer.Option(None, "--device", help="auto (CUDA if present, else CPU) | cpu | cuda | cuda:N."),
    amp: str = typer.Option(None, "--amp", help="Mixed precision: auto (on for CUDA) | on | off."),
    threads: int = typer.Option(None, "--threads", help="torch CPU threads (default: torch's choice)."),
    save_every_min: float = typer.Option(None, "--save-every-min", help="Also checkpoint mid-epoch every N minutes (10)."),
    resume: Path = typer.Option(None, "--resume", help="Continue a run exactly from its checkpoint (or run folder)."),
    workspace: Path = options.Workspace,
) -> None:
    """Train RAN (or the ResNet-18 baseline) on a manifest split or subset.

    CUDA is used when present (mixed precision, channels_last), else the CPU. Several GPUs:
    torchrun --nproc_per_node N $(which fercurate) train ...  Writes <out>/<arch>.pt (resumable
    checkpoint), <arch>.best.pt (best validation epoch), metrics.jsonl and excluded.parquet.

    Example: fercurate train --manifest manifests/ferplus.parquet --split train --val-split val --pretrained resnet18_msceleb.pth --out runs/ran-ferplus
    """
    import os

    from fercurate.ran.train import TrainConfig
    from fercurate.ran.train import train as run_train
    from fercurate.workspace import Workspace

    if workspace:
        os.environ["FERCURATE_WORKSPACE"] = str(Path(workspace).resolve())
    ws = Workspace.current(workspace)
    given = {
        "manifest": manifest, "splits": list(split) if split else None, "subset": subset,
        "val_splits": list(val_split) if val_split else None, "val_subset": val_subset, "arch": arch,
        "variant": variant, "crops": crops, "num_classes": classes, "targets": targets, "epochs": epochs,
        "batch_size": batch_size, "lr": lr, "momentum": momentum, "nesterov": nesterov,
        "weight_decay": weight_decay, "schedule": schedule, "milestones": _csv_ints(milestones), "gamma": gamma,
        "warmup_epochs": warmup_epochs, "input_size": input_size, "face_size": face_size, "stem": stem,
        "rb_margin": rb_margin, "rb_weight": rb_weight, "label_smoothing": label_smoothing, "augment": augment,
        "rotate": rotate, "translate": translate, "erase": erase,
        "pretrained": str(pretrained) if pretrained else None, "pretrained_head": pretrained_head,
        "freeze": [f.strip() for f in freeze.split(",") if f.strip()] if freeze else None, "seed": seed, "limit": limit, "workers": workers,
        "decode_workers": decode_workers, "cache": cache, "cache_dir": str(cache_dir) if cache_dir else None,
        "device": device, "amp": amp, "threads": threads, "save_every_min": save_every_min,
        "out": str(out) if out else None,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if resume is not None:
        result = run_train(TrainConfig(manifest="", out=""), resume=resume, overrides=given, echo=typer.echo)
    else:
        if manifest is None:
            raise InputError("--manifest is required (or --resume a run)")
        if "out" not in given:
            given["out"] = str(ws.runs / f"{given.get('arch', 'ran')}-{Path(manifest).stem}")
        result = run_train(TrainConfig(**given), echo=typer.echo)
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
