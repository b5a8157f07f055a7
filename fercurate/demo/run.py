"""``fercurate demo``: the whole pipeline, offline, in a few minutes, on faces that ship in packages.

Each step is the exact CLI command a user would type in the demo folder (run in this process by the
command runner the caller passes, ``fercurate.cli.demo.run_command`` for ``fercurate demo``, so models
load once; the demo folder is passed as ``--workspace``; the environment is left alone), printed
before it runs: build small datasets in the four native layouts -> ingest -> head pose ->
Pose subsets -> synthetic masks -> a short RAN training -> evaluation on the subsets -> duplicate
and leakage scan -> the HTML report.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fercurate.errors import FercurateError


@dataclass
class DemoResult:
    workdir: Path
    report: Path
    steps: list[tuple[str, float]] = field(default_factory=list)  # (command, seconds)
    outputs: dict[str, Path] = field(default_factory=dict)


class DemoStepError(FercurateError):
    """A demo step failed: the command is named so the user can re-run it alone."""


CommandRunner = Callable[[list[str]], None]
"""Runs one ``fercurate`` command in this process, given its arguments as typed after ``fercurate``;
raises :class:`DemoStepError` when the command fails."""


def run_demo(
    workdir: str | os.PathLike,
    *,
    run_command: CommandRunner,
    epochs: int = 4,
    faces: int | None = None,
    input_size: int = 48,
    seed: int = 0,
    workers: int | None = None,
    echo: Callable[[str], Any] = print,
) -> DemoResult:
    """Run the demo in ``workdir`` (created if needed; the workspace of every step).

    ``run_command`` runs each step (the demo does not import the CLI it drives: ``fercurate demo``
    passes :func:`fercurate.cli.demo.run_command`). ``faces`` limits the identities used (all 103 by
    default); ``input_size`` is RAN's crop size.
    """
    from fercurate.demo import layouts
    from fercurate.demo.faces import LICENCES, base_faces

    work = Path(workdir).expanduser().resolve()
    work.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(work)  # every command runs as a user would type it, from inside the demo folder
    result = DemoResult(work, work / "report" / "index.html")
    jobs = ["-j", str(workers)] if workers else []

    def step(args: list[str]) -> None:
        echo(f"\n$ fercurate {shlex.join(args)}")
        t0 = time.perf_counter()
        run_command([*args, "--workspace", str(work)])
        result.steps.append((f"fercurate {shlex.join(args)}", time.perf_counter() - t0))

    try:
        echo(f"fercurate demo in {work} (each step below is the command you would type there; "
             f"it runs with --workspace {work})")
        t0 = time.perf_counter()
        found = base_faces()
        faces = found[:faces] if faces else found
        echo(f"faces shipped inside installed packages: using {len(faces)} of {len(found)} "
             f"({', '.join(f.name for f in found[:3])} + {len(found) - 3} LFW crops from scikit-image)")
        for name, text in LICENCES.items():
            echo(f"  {name}: {text}")
        raw = work / "raw"
        writers = {"ferplus": layouts.write_ferplus, "affectnet": layouts.write_affectnet,
                   "rafdb": layouts.write_rafdb, "sfew": layouts.write_sfew}
        for dataset, write in writers.items():
            write(raw / dataset, faces, seed=seed)
        result.steps.append(("build native layouts", time.perf_counter() - t0))
        echo(f"native layouts written under {raw} ({time.perf_counter() - t0:.1f}s)")

        for dataset in writers:
            step(["ingest", dataset, str(raw / dataset), *jobs])
        step(["info", "ferplus"])
        step(["pose", "manifests/ferplus.parquet", *jobs])
        step(["subsets", "build", "manifests/ferplus.parquet", "--pose", "30", "--pose", "45"])
        step(["synth", "mask", "manifests/ferplus.parquet", "--split", "test", "--style", "surgical,cloth,n95,kn95",
              "--out", "data/ferplus-masked", "--seed", str(seed), *jobs])
        step(["subsets", "build", "manifests/ferplus-masked.parquet", "--occlusion"])
        step(["train", "--manifest", "manifests/ferplus.parquet", "--split", "train", "--val-split", "val",
              "--input-size", str(input_size), "--epochs", str(epochs), "--milestones", f"{max(1, epochs - 1)}",
              "--lr", "0.05", "--batch-size", "32", "--seed", str(seed), "--out", "runs/ran-demo", *jobs])
        step(["eval", "--model", "runs/ran-demo/ran.pt", "--manifest", "manifests/ferplus.parquet", "--split", "test",
              "--subset", "pose30-estimated", "--subset", "pose45-estimated", "--bootstrap", "200", "--report",
              "runs/ran-demo/eval", *jobs])
        step(["eval", "--model", "runs/ran-demo/ran.pt", "--subset", "occlusion-labelled", "--bootstrap", "200",
              "--report", "runs/ran-demo/eval-masked", *jobs])
        step(["quality", "dups", "manifests/ferplus.parquet", "manifests/rafdb.parquet", *jobs])
        step(["report", "--out", "report"])
    finally:
        os.chdir(cwd)

    result.outputs = {
        "raw datasets (native layouts)": work / "raw",
        "manifests, layers and subsets": work / "manifests",
        "occlusion labels (synthetic)": work / "annotations",
        "masked images": work / "data" / "ferplus-masked",
        "RAN run and evaluations": work / "runs" / "ran-demo",
        "duplicates and leakage": work / "quality",
        "report": result.report,
    }
    total = sum(s for _, s in result.steps)
    echo(f"\ndemo finished in {total:.0f}s. Outputs:")
    for what, where in result.outputs.items():
        echo(f"  {what:<32} {where}")
    echo("Labels in the demo datasets are assigned per identity, not annotated: the numbers show the "
         "pipeline working, not expression recognition.")
    return result
