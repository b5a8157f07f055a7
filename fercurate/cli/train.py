"""``fercurate train``: the RAN / ResNet-18 baseline trainer.

Its options are generated from :class:`fercurate.ran.config.TrainConfig` (one option per field, with the
field's help, flag and choices), so the CLI and the library cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from fercurate.cli import options
from fercurate.compat import moved_module
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
    given = options.setting_values(TrainConfig, kwargs)
    ws = Workspace.choose(workspace, manifest=given.get("manifest"))
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


def register(app: typer.Typer) -> None:
    app.command("train")(train)


# fercurate eval and fercurate leaderboard moved to fercurate.cli.eval
__getattr__ = moved_module(__name__, "fercurate.cli.eval", {"LABELS_HELP": "fercurate.ran.config:LABELS_HELP"})
