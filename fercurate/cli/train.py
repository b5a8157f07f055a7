"""``fercurate train`` and ``fercurate eval``: the RAN / ResNet-18 baseline trainer and evaluator.

``train``'s options are generated from :class:`fercurate.ran.config.TrainConfig` (one option per field,
with the field's help, flag and choices), so the CLI and the library cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from pathlib import Path
from typing import Any, Optional

import typer

from fercurate.cli import options
from fercurate.errors import InputError
from fercurate.ran.config import TrainConfig, config_fields, option_name
from fercurate.workspace import Workspace


def _annotation(f: dataclasses.Field, hint: Any) -> Any:
    """The CLI type of a TrainConfig field: every option is optional (None = not given)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) else hint
    if typing.get_origin(base) is list:
        return Optional[list[str]] if f.metadata.get("repeat") else Optional[str]
    if base not in (bool, int, float, str):
        raise TypeError(f"TrainConfig.{f.name}: no command-line form for type {hint!r}")
    return Optional[base]


def _help(f: dataclasses.Field) -> str:
    text = f.metadata.get("help", "")
    choices = f.metadata.get("choices")
    if choices and "|" not in text:
        text += f" [{' | '.join(map(str, choices))}]"
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    if default not in (None, [], "") and not isinstance(default, bool):
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        text += f" (default: {shown})"
    elif isinstance(default, bool):
        text += f" (default: {'on' if default else 'off'})"
    return text


def _option(f: dataclasses.Field, hint: Any) -> Any:
    flag = option_name(f)
    if hint is Optional[bool]:
        flag = f"{flag}/--no-{flag[2:]}"
    decls = [flag] + ([f.metadata["short"]] if f.metadata.get("short") else [])
    return typer.Option(None, *decls, help=_help(f), show_default=False, min=f.metadata.get("minimum"),
                        rich_help_panel=f.metadata.get("panel"))


def train_parameters() -> list[inspect.Parameter]:
    """The ``fercurate train`` options: one per TrainConfig field, then ``--resume`` and ``--workspace``."""
    hints = typing.get_type_hints(TrainConfig)
    params = []
    for f in config_fields():
        annotation = _annotation(f, hints[f.name])
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=_option(f, annotation),
                                        annotation=annotation))
    params.append(inspect.Parameter("resume", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                                    default=typer.Option(None, "--resume", rich_help_panel="Run",
                                                         help="Continue a run exactly from its checkpoint (or run folder).")))
    params.append(inspect.Parameter("workspace", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                                    default=options.Workspace))
    return params


def config_values(given: dict[str, Any]) -> dict[str, Any]:
    """CLI values -> TrainConfig keyword arguments: options not given are left out, lists parsed."""
    hints = typing.get_type_hints(TrainConfig)
    out: dict[str, Any] = {}
    for f in config_fields():
        value = given.get(f.name)
        if value is None or (isinstance(value, (list, tuple)) and not value):
            continue
        if f.metadata.get("csv"):
            items = [v.strip() for v in str(value).split(",") if v.strip()]
            if int in typing.get_args(hints[f.name]):
                try:
                    items = [int(v) for v in items]
                except ValueError as exc:
                    raise InputError(f"{option_name(f)} takes comma-separated integers, e.g. 15,30 (got {value!r})") from exc
            value = items
        elif isinstance(value, (list, tuple)):
            value = list(value)
        elif isinstance(value, Path):
            value = str(value)
        out[f.name] = value
    return out


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
    given = config_values(kwargs)
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


train.__signature__ = inspect.Signature(train_parameters())  # type: ignore[attr-defined]
train.__annotations__ = {p.name: p.annotation for p in train.__signature__.parameters.values()}  # type: ignore[attr-defined]


def evaluate(
    model: Path = typer.Option(..., "--model", help="fercurate checkpoint (ran.pt), TorchScript file, or ONNX model (needs onnxruntime)."),
    manifest: str = typer.Option(None, "--manifest", "-m", help="Manifest path or name (default: the one the subsets belong to, else the model's)."),
    split: list[str] = typer.Option(None, "--split", help="Split(s) to score (default: test when no --subset is given)."),
    subset: list[str] = typer.Option(None, "--subset", help="Subset(s) to score, each reported separately (repeatable)."),
    report: Path = typer.Option(None, "--report", help="Report folder (default: <model folder>/eval)."),
    save_probs: Path = typer.Option(None, "--save-probs", help="Write per-sample class probabilities (sample_id, prob_0..) to this Parquet file."),
    draw_attention: int = typer.Option(0, "--draw-attention", help="Draw RAN's crop weights on N sample faces (attention.png)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the 95% confidence intervals (0 = none)."),
    batch_size: int = typer.Option(128, "--batch-size", "-b", help="Faces per forward pass."),
    input_size: int = typer.Option(None, "--input-size", help="TorchScript/ONNX models: input size H=W (default: from the file, else 224)."),
    labels: str = typer.Option(None, "--labels", help="TorchScript/ONNX: comma-separated class names of the outputs (must be canonical order)."),
    input_norm: str = typer.Option("unit", "--input-norm", help="TorchScript/ONNX input values: unit ([0,1] RGB) | imagenet (mean/std normalised)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    decode_workers: int = options.Workers,
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Cache decoded faces under <workspace>/cache/faces."),
    strict: bool = typer.Option(False, "--strict", help="Fail if any image cannot be read (default: report and skip those rows)."),
    workspace: Path = options.Workspace,
) -> None:
    """Score a model on a split and subsets: accuracy with 95% CI, per-class table, confusion matrices, attention.

    Prints one table with the RAN paper's Table II beside our figures and writes metrics.json, report.txt,
    confusion_<group>.png/.json, predictions.parquet (with RAN attention weights per crop) and excluded.parquet.
    Input contract for TorchScript/ONNX: float32 (B,3,H,W) RGB in [0,1] -> (B,8 or 7) logits or probabilities
    in canonical label order.

    Example: fercurate eval --model runs/ran-ferplus/ran.pt --subset pose45
    """
    import os

    from fercurate.ran.evaluate import evaluate as run_eval

    if workspace:
        os.environ["FERCURATE_WORKSPACE"] = str(Path(workspace).resolve())
    names = [s.strip() for s in labels.split(",")] if labels else None
    run_eval(
        model, manifest=manifest, splits=list(split or []), subsets=list(subset or []),
        report_dir=report or model.parent / "eval", device=device, batch_size=batch_size, input_size=input_size,
        labels=names, input_norm=input_norm, n_boot=bootstrap, save_probs=save_probs, draw_attention=draw_attention,
        workers=decode_workers, cache=cache, strict=strict, echo=typer.echo,
    )


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("eval")(evaluate)
