"""``fercurate demo`` (and the in-process runner its steps go through) and ``fercurate report``."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from fercurate.cli import options
from fercurate.workspace import Workspace


def run_command(args: list[str]) -> None:
    """Run one ``fercurate`` command in this process, as the demo's steps do; raise if it fails."""
    from typer.main import get_command

    from fercurate.cli import app
    from fercurate.demo.run import DemoStepError

    command = get_command(app)
    try:
        code = command.main(args=args, prog_name="fercurate", standalone_mode=False)
    except SystemExit as exc:  # pragma: no cover - click may still exit on usage errors
        code = exc.code
    if code not in (None, 0):
        raise DemoStepError(f"'fercurate {shlex.join(args)}' failed (exit {code})")


def demo(
    workdir: Path = typer.Option(
        Path("fercurate-demo"), "--workdir", "-d", "--workspace", "-w",
        help="Folder for everything the demo writes (its own workspace).",
    ),
    epochs: int = typer.Option(4, "--epochs", help="Epochs of the short RAN training.", min=1),
    faces: int = typer.Option(None, "--faces", help="Use only the first N of the 103 offline faces (quicker).", min=4),
    input_size: int = typer.Option(48, "--input-size", help="RAN crop size for the short training.", min=16),
    seed: int = typer.Option(0, "--seed", help="Seed of the demo data, masks and training."),
    workers: int = options.Workers,
) -> None:
    """Run the whole pipeline offline on small datasets built from faces shipped in installed packages.

    Builds AffectNet / FERPlus / RAF-DB / SFEW native layouts, then ingest -> pose -> Pose subsets ->
    synthetic masks -> a short RAN training -> eval on the subsets -> duplicates -> HTML report,
    printing every command and where its output went. Takes a few minutes on 2 cores.

    Example: fercurate demo --workdir /tmp/fercurate-demo
    """
    from fercurate.demo import run_demo

    run_demo(workdir, run_command=run_command, epochs=epochs, faces=faces, input_size=input_size, seed=seed,
             workers=workers, echo=typer.echo)


def report(
    out: Path = typer.Option(Path("report"), "--out", "-o", help="Folder for index.html and its PNGs."),
    eval_dir: list[Path] = typer.Option(
        [], "--eval", help="Extra folders to search for 'fercurate eval' reports (the workspace's runs/ and eval/ are always searched)."
    ),
    workspace: Path = options.Workspace,
) -> None:
    """One static HTML report (+ PNGs) of everything the workspace holds.

    First screen: the findings that matter (leakage between splits, non-faces, contested labels, subset
    sizes beside the paper's Table I, the best accuracy per subset), each with its number and a link.
    Then datasets per split x label, pose histograms, subsets, occlusion labelling, mask contact sheets,
    training curves and run settings, evaluations (full-size confusion matrices, what each n leaves out)
    and data quality. The quality pages (tables, contact sheets) are written into OUT/quality/ from the
    existing layers (nothing is computed: run 'fercurate quality report' or its parts first).

    Example: fercurate report --out report/
    """
    from fercurate.report import build_report

    ws = Workspace.current(workspace)
    result = build_report(out if out.is_absolute() else ws.root / out, workspace=ws, eval_dirs=eval_dir,
                          echo=typer.echo)
    typer.echo(f"report: {result.index}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
    app.command("report")(report)
