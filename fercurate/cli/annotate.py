"""``fercurate annotate launch|pull|status|adjudicate|suggest|database``: occlusion labelling in the FiftyOne App."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import typer

from fercurate.cli import new_app, options
from fercurate.errors import RejectsError
from fercurate.workspace import Workspace, manifest_name

annotate_app = new_app(
    "Label occlusion in the FiftyOne App and collect the labels (annotations/<name>.occlusion.parquet).\n\n"
    "Example: [bold]fercurate annotate launch manifests/ferplus.parquet --split test[/bold]"
)


@annotate_app.command("launch")
def launch(
    manifest: str = typer.Argument(..., help="Manifest path or name."),
    split: str = typer.Option(None, "--split", "-s", help="Only add this split's samples (and open it)."),
    annotator: str = typer.Option(None, "--annotator", "-a", help="Your name, recorded with every label (default: $USER)."),
    port: int = typer.Option(
        None, "--port", "-p",
        help="App port (default: one fixed for this workspace and annotator, so the browser keeps the layout; "
             "the next free one when it is taken).",
    ),
    address: str = typer.Option("localhost", "--address", help="Address to serve the App on (0.0.0.0 for other machines)."),
    root: Path = typer.Option(None, "--root", help="Dataset folder, if the images moved since ingest."),
    pull_on_exit: bool = typer.Option(True, "--pull/--no-pull", help="Pull the labels when you stop the App (Ctrl-C)."),
    second_pass: bool = typer.Option(
        False, "--second-pass", help="Blind second pass: faces others labelled and you have not, without their labels."
    ),
    sample: int = typer.Option(None, "--sample", min=1, help="Second pass: label only this many faces (chosen by --seed)."),
    seed: int = typer.Option(0, "--seed", help="Second pass: which faces --sample takes, and their order."),
    adjudicate: bool = typer.Option(
        False, "--adjudicate", help="Settle disagreements: each person's label side by side; your choice is recorded."
    ),
    workspace: Path = options.Workspace,
) -> None:
    """Open your own labelling session in the FiftyOne App (prints the URL).

    Each annotator launches their own session: own App server and port, own
    dataset in a database of their own (their App lists no one else's).
    Labels are recorded under that name only, and nobody sees anyone else's
    labels, so every label is independent. Your queue holds the faces nobody
    has labelled yet, most likely occluded first.

    The App opens on the first face of your queue with the "Occlusion
    labelling" panel beside it. Keys: 1 mask, 2 glasses, 3 left/right,
    4 upper, 5 bottom (more keys: multi-label), 0 or n no occlusion, Enter
    save and open the next face, z undo, q close. Labels reach
    <workspace>/annotations/<name>.occlusion.parquet within seconds.
    Ctrl-C stops the App.

    Example: fercurate annotate launch ferplus --split test --annotator alice

    Then, for agreement: ... --annotator bob --second-pass --sample 200;
    to settle disagreements: ... --annotator carol --adjudicate.
    """
    from fercurate.annotate import live
    from fercurate.annotate.app import launch as launch_app
    from fercurate.annotate.database import kept
    from fercurate.annotate.pull import pull
    from fercurate.annotate.session import annotation_path
    from fercurate.errors import InputError

    if second_pass and adjudicate:
        raise InputError("choose one of --second-pass and --adjudicate")
    if sample is not None and not second_pass:
        raise InputError("--sample is for --second-pass")
    mode = "second-pass" if second_pass else "adjudicate" if adjudicate else "label"
    ws = Workspace.choose(workspace, manifest=manifest)
    for line in live.merge_spilled_notes(ws.annotation_path(manifest_name(ws.resolve_manifest(manifest)))):
        typer.echo(line)
    launched = launch_app(manifest, split=split, annotator=annotator, port=port, address=address, root=root,
                          workspace=ws, mode=mode, sample=sample, seed=seed)
    ds = launched.dataset
    # Before the URL is printed: whoever sees it may send the kill at once; it stops the App cleanly too.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        typer.echo(f"App: {launched.url}   annotator: {launched.annotator}   mode: {mode}   dataset: {ds.name}")
        typer.echo(f"labels go to {annotation_path(ds, ws)}")
        typer.echo(f"queue: {launched.queue:,} face(s)" + ("" if launched.queue else " (nothing to do: showing all faces)"))
        typer.echo("the App opens on the first face with the labelling panel: 1 mask, 2 glasses, 3 left/right, "
                   "4 upper, 5 bottom, 0/n none, Enter save+next, z undo, q close; Ctrl-C to stop")
        launched.session.wait(-1)
    except KeyboardInterrupt:
        typer.echo("stopping the App ...")
    finally:
        launched.close()
    if pull_on_exit:
        _report_pull(pull(ds.name, workspace=ws))
    if kept(ws):
        typer.echo("the workspace's MongoDB keeps running ('annotate database --keep'); "
                   "stop it with: fercurate annotate database --stop")
    _check_accounted(ds, launched.started, ws)


def _check_accounted(ds, since, ws: Workspace) -> None:  # noqa: ANN001 - a FiftyOne dataset, datetime
    """Fail, naming them, when labels saved in this session are not in the workspace's annotation file."""
    from fercurate.annotate.session import annotation_path, unaccounted
    from fercurate.errors import FercurateError

    missing = unaccounted(ds, since, ws)
    if missing:
        sid, types = next(iter(missing.items()))
        raise FercurateError(
            f"{len(missing)} label(s) saved in this session are not in {annotation_path(ds, ws)} "
            f"(e.g. {sid}: {'|'.join(types) or 'withdrawn'}); App dataset {ds.name!r} still shows them: "
            "label those faces again once the file can be written"
        )


@annotate_app.command("pull")
def pull_cmd(
    name: str = typer.Argument(..., help="Manifest name (e.g. ferplus) or App dataset name."),
    annotator: str = typer.Option(
        None, "--annotator", "-a", help="Who set tags by hand in the App (default: the name given at launch)."
    ),
    workspace: Path = options.Workspace,
) -> None:
    """Merge the App's occlusion labels into annotations/<name>.occlusion.parquet (append-only history).

    Tags outside the vocabulary are listed and not taken (exit code 3); conflicts between
    annotators are kept and reported.

    Example: fercurate annotate pull ferplus
    """
    from fercurate.annotate.pull import pull

    _report_pull(pull(name, workspace=Workspace.choose(workspace, manifest=name), annotator=annotator))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _report_pull(result) -> None:  # noqa: ANN001 - PullResult, imported lazily
    typer.echo(result.summary())
    for problem in result.problems:
        typer.secho(f"error: {problem.line()}", err=True, fg="red")
    if result.problems:
        raise RejectsError(f"{len(result.problems)} label(s) or tag(s) were not taken (listed above)")


@annotate_app.command("status")
def status_cmd(
    name: str = typer.Argument(..., help="Manifest name or path."),
    split: str = typer.Option(None, "--split", "-s", help="Only this split."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    app: bool = typer.Option(True, "--app/--no-app", help="Also count labels in the App not pulled yet (starts MongoDB)."),
    workspace: Path = options.Workspace,
) -> None:
    """Labelled / remaining / per type / per annotator, agreement and disagreements.

    Agreement (Cohen's kappa per type with a 95% bootstrap interval) is over independent labels:
    those made blind, in an annotator's own App session where nobody else's labels were shown.
    Agreement over all labels follows, marked "not independent", when it differs. Per annotator:
    current labels, withdrawn labels, decisions made; open disagreements and adjudicated faces.

    Example: fercurate annotate status ferplus --split test
    """
    from fercurate.annotate.status import status

    report = status(name, split=split, workspace=Workspace.choose(workspace, manifest=name), app=app)
    typer.echo(json.dumps(report.to_dict(), indent=2, default=str) if as_json else report.render())


@annotate_app.command("adjudicate")
def adjudicate_cmd(
    name: str = typer.Argument(..., help="Manifest name or path."),
    split: str = typer.Option(None, "--split", "-s", help="Only this split."),
    decide: list[str] = typer.Option(
        None, "--decide", "-d", metavar="SAMPLE_ID=TYPES",
        help="Record a decision, e.g. ferplus/test/fer0000001.png=mask|glasses (repeat for more; 'none' for no occlusion).",
    ),
    by: str = typer.Option(None, "--by", help="Who decides, recorded with each decision (default: $USER)."),
    force: bool = typer.Option(False, "--force", help="Decide samples that are not in disagreement too."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    workspace: Path = options.Workspace,
) -> None:
    """Show the faces where annotators disagree side by side, or record decisions (--decide).

    A decision is kept in annotations/<name>.occlusion.parquet with who made it and becomes the
    face's current label. Decide in the App instead with: fercurate annotate launch NAME --adjudicate

    Types are joined with | (quote it in the shell) or commas; --force decides a face that is not in
    disagreement (e.g. to overrule two people who agree).

    Example: fercurate annotate adjudicate ferplus --split test
             fercurate annotate adjudicate ferplus --decide 'ferplus/test/fer0000001.png=mask|glasses' --by carol
    """
    from fercurate.annotate.adjudicate import adjudicate

    result = adjudicate(
        name, split=split, decisions=decide or [], adjudicator=by, force=force,
        workspace=Workspace.choose(workspace, manifest=name),
    )
    typer.echo(json.dumps(result.to_dict(), indent=2, default=str) if as_json else result.render())


@annotate_app.command("suggest")
def suggest_cmd(
    manifest: str = typer.Argument(..., help="Manifest path or name."),
    split: str = typer.Option(None, "--split", "-s", help="Only score this split (and learn from its faces)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, data and threads -> same scores)."),
    fast: bool = typer.Option(
        False, "--fast",
        help="Quicker preset, rougher ranking: 200 pre-training batches on at most 5,000 faces, 4 fine-tuning "
             "epochs (default 800 / 30,000 / 10); --steps/--pool/--epochs still override it.",
    ),
    steps: int = typer.Option(None, "--steps", help="Pre-training batches (default 800, --fast 200; more = slower, usually better).", min=1),
    pool: int = typer.Option(None, "--pool", help="At most this many of the manifest's faces to pre-train on (default 30,000, --fast 5,000).", min=2),
    epochs: int = typer.Option(None, "--epochs", help="Fine-tuning epochs on labels already in the table (default 10, --fast 4).", min=0),
    nonfaces: bool = typer.Option(
        True, "--exclude-nonfaces/--keep-nonfaces",
        help="Leave out the non-faces found by 'fercurate quality nonface' (its nonface layer) from training, ranking and pre-fill.",
    ),
    no_labels: bool = typer.Option(False, "--no-labels", help="Ignore existing occlusion labels: pre-training only."),
    threads: int = typer.Option(2, "--threads", help="Torch threads for training.", min=1),
    no_events: bool = typer.Option(False, "--no-events", help="Only write the score layer, no suggestion events."),
    backbone: Path = typer.Option(
        None, "--backbone", exists=True, dir_okay=False,
        help="Start the scorer from this expression model's ResNet-18 (a baseline.pt/ran.pt from "
             "'fercurate train'): better once labels exist; it runs at the model's input size "
             "(64 px: ~6 min of pre-training on 2 cores; 224 px: ~15x slower per step).",
    ),
    device: str = typer.Option("auto", "--device", help="auto (CUDA if present, else CPU) | cpu | cuda | cuda:N."),
    workers: int = options.Workers,
    workspace: Path = options.Workspace,
) -> None:
    """Score every face for occlusion (sorts the App's queue) and pre-fill likely types to confirm.

    Trains a small CNN (or, with --backbone, a trained expression model's ResNet-18) on the
    manifest's own faces (synthetic occluders + its expression labels), fine-tuned on the occlusion
    labels already in annotations/ (human, official); writes
    manifests/<name>.occlusion_suggest.parquet and suggestion events (never labels: a person
    confirms them in the App). Re-run it after labelling a few hundred faces: it learns from them.
    Non-faces flagged by 'fercurate quality nonface' are left out (run it first). The expected
    training time is printed after the first few batches; with defaults it is minutes on 2 CPU
    cores (800 batches), --fast is about 4x quicker.

    Example: fercurate annotate suggest manifests/ferplus.parquet --split test
             fercurate annotate suggest ferplus --split test --fast
             fercurate annotate suggest ferplus --split test --backbone runs/baseline/baseline.pt
    """
    from fercurate.annotate.suggest import suggest
    from fercurate.scorer.config import ScorerConfig

    explicit = {k: v for k, v in (("steps", steps), ("pool", pool), ("finetune_epochs", epochs)) if v is not None}
    common = {"seed": seed, "threads": threads, "backbone": str(backbone) if backbone else None, "device": device}
    config = ScorerConfig.fast(**common, **explicit) if fast else ScorerConfig(**common, **explicit)
    typer.echo(f"training the scorer: {config.steps:,} pre-training batches on at most {config.pool:,} faces, "
               f"{config.finetune_epochs} fine-tuning epochs{' (--fast)' if fast else ''}")
    result = suggest(
        manifest, split=split, workspace=Workspace.choose(workspace, manifest=manifest), config=config,
        use_table_labels=not no_labels, write_events=not no_events, workers=workers,
        exclude_nonfaces=nonfaces, report=typer.echo,
    )
    typer.echo(result.summary())
    typer.echo("re-launch the App (fercurate annotate launch) to see the queue sorted by the new scores")


@annotate_app.command("database")
def database_cmd(
    stop: bool = typer.Option(False, "--stop", help="Stop the workspace's MongoDB server now (the next command starts it again)."),
    keep: bool = typer.Option(False, "--keep", help="Keep it running after the last fercurate command, until --stop."),
    workspace: Path = options.Workspace,
) -> None:
    """Show (start if needed), keep or stop the workspace's own MongoDB server (data in <workspace>/.fiftyone/db).

    fercurate runs one mongod per workspace on a free local port. It stops by itself
    15 s after the last fercurate command using it has exited ($FERCURATE_DATABASE_LINGER
    seconds), as FiftyOne's own database does; --keep keeps it running (for FiftyOne used
    directly, say) until --stop. It never uses another program's MongoDB.

    Example: fercurate annotate database          (prints its URI, pid and data folder)
             fercurate annotate database --keep
             fercurate annotate database --stop
    """
    from fercurate.annotate.database import ensure_database, keep_database, linger, stop_database

    ws = Workspace.current(workspace)
    if stop and keep:
        from fercurate.errors import InputError

        raise InputError("choose one of --keep and --stop")
    if stop:
        stopped = stop_database(ws)
        typer.echo(f"stopped mongod {stopped.pid} ({stopped.uri})" if stopped else "no database server was running")
        return
    db = keep_database(ws) if keep else ensure_database(ws)
    until = "kept until 'fercurate annotate database --stop'" if keep else \
        f"stops {linger():g} s after the last fercurate command using it"
    typer.echo(f"{db.uri}   pid {db.pid}   data {db.dbpath}   ({until})")


def register(app: typer.Typer) -> None:
    app.add_typer(annotate_app, name="annotate")
