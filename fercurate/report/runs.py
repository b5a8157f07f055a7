"""The report's training and evaluation sections: curves, run settings, confusion matrices, what n means.

Training runs come from ``metrics.jsonl`` and the checkpoint beside it; evaluations from the folders
``fercurate eval --report`` writes (read through :mod:`fercurate.report.sources`).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fercurate.errors import InputError
from fercurate.report import figures, sources
from fercurate.report.html import Raw, esc, figure, link, missing, pct, table, unreadable_list
from fercurate.subsets import subset_ids
from fercurate.workspace import Workspace

# What fercurate train / eval do not record (yet): said on the page instead of left blank.
NOT_RECORDED_TRAIN = "package versions, device and hardware, start and end time"
NOT_RECORDED_EVAL = "manifest hash at scoring time, device, duration, package versions"


def load_evals(ws: Workspace, extra: Sequence[str | os.PathLike] = (),
               unreadable: list[str] | None = None) -> list[tuple[str, sources.EvalRun]]:
    """Every readable eval folder with its page anchor (``eval-0``, ``eval-1``, ...); why each other
    one could not be read goes to ``unreadable``."""
    found = []
    for folder in sources.find_eval_runs(ws, extra):
        try:
            found.append(sources.read_eval(folder, ws))
        except InputError as exc:
            if unreadable is not None:
                unreadable.append(str(exc))
    return [(f"eval-{i}", ev) for i, ev in enumerate(found)]


def load_trains(ws: Workspace, extra: Sequence[str | os.PathLike] = ()) -> list[tuple[str, sources.TrainRun]]:
    """Every training run folder with its page anchor (``run-0``, ``run-1``, ...)."""
    return [(f"run-{i}", sources.read_train_run(f)) for i, f in enumerate(sources.find_train_runs(ws, extra))]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _rel(path: Path | None, ws: Workspace) -> str:
    if path is None:
        return "—"
    try:
        return path.resolve().relative_to(ws.root).as_posix()
    except ValueError:
        return str(path)


def _written(path: Path | None) -> str:
    """A file's modification time in UTC (when the command that wrote it finished), '—' if absent."""
    if path is None or not path.exists():
        return "—"
    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _sha_now(path: Path | None) -> str | None:
    """The SHA-256 of a file as it is now (None if absent); hashed once per file version per process."""
    if path is None or not path.exists():
        return None
    st = path.stat()
    return _sha_of(str(path.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)
def _sha_of(path: str, mtime_ns: int, size: int) -> str:  # noqa: ARG001 - the key: a changed file is hashed again
    from fercurate.ran.checkpoint import file_sha256

    return file_sha256(path)


# --- training ---------------------------------------------------------------------------------------

_SETTINGS = ("arch", "variant", "crops", "num_classes", "targets", "epochs", "batch_size", "lr", "schedule", "milestones",
             "warmup_epochs", "weight_decay", "input_size", "pretrained", "freeze", "augment", "rb_margin", "rb_weight",
             "seed", "splits", "val_splits", "subset", "amp", "device")


def _value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) if v else "none"
    return "none" if v is None else str(v)


def run_settings(run: sources.TrainRun, ws: Workspace) -> list[list[Any]]:
    """(setting, value) rows: the training config, the data it saw (with hashes) and what it cost."""
    st, cfg = run.state, run.state.get("config", {}) or {}
    epochs = [r for r in run.records if r.get("event") == "epoch"]
    rows: list[list[Any]] = [["checkpoint", _rel(run.checkpoint, ws)], ["checkpoint written", _written(run.checkpoint)]]
    man = st.get("manifest") or {}
    if man:
        path = Path(man.get("path", ""))
        now = _sha_now(path)
        same = "no manifest file at that path now" if now is None else (
            "unchanged since training" if now == man.get("sha256") else "CHANGED since training")
        rows += [["manifest", f"{man.get('name', '?')} ({_rel(path, ws)})"],
                 ["manifest SHA-256", f"{man.get('sha256', '—')} ({same})"]]
    rows += [[k, _value(cfg[k])] for k in _SETTINGS if k in cfg]
    if "train_samples" in st:
        rows.append(["training faces", f"{int(st['train_samples']):,}"])
    if epochs:
        secs = sum(float(r.get("train_seconds", 0.0)) for r in epochs)
        rows += [["epochs done", f"{len(epochs):,} of {cfg.get('epochs', '?')}"],
                 ["training time (sum of epochs)", f"{secs:,.1f} s"],
                 ["processes", str(epochs[-1].get("world_size", st.get("world_size", 1)))],
                 ["throughput (last epoch)", f"{float(epochs[-1].get('img_per_s', 0)):,.1f} images/s"]]
        best = st.get("best") or {}
        if best.get("val_acc") is not None:
            rows.append(["best validation accuracy", f"{pct(best['val_acc'])} (epoch {best.get('epoch', '?')})"])
    starts = [r for r in run.records if r.get("event") in ("start", "resume")]
    if starts:
        rows.append(["started", ", resumed ".join(str(r.get("started_at", "?")) for r in starts)])
        if epochs and epochs[-1].get("finished_at"):
            rows.append(["last epoch finished", str(epochs[-1]["finished_at"])])
        rows += environment_rows(starts[-1].get("environment") or {})
    else:
        rows.append(["not recorded by fercurate train", NOT_RECORDED_TRAIN])
    return rows


def environment_rows(env: dict[str, Any]) -> list[list[Any]]:
    """Device, hardware and package versions as (setting, value) rows, from provenance.environment()."""
    if not env:
        return []
    hw = env.get("cpu", "?") + (f", {env['cpu_count']} cores" if env.get("cpu_count") else "")
    rows = [["device", env.get("device", "?") + (f" ({env['gpu']})" if env.get("gpu") else "")],
            ["hardware", hw + (f", {env['torch_threads']} torch threads" if env.get("torch_threads") else "")],
            ["platform", env.get("platform", "?")]]
    packages = env.get("packages") or {}
    if packages:
        rows.append(["package versions", ", ".join(f"{k} {v}" for k, v in packages.items())])
    return rows


def training_section(trains: Sequence[tuple[str, sources.TrainRun]], ws: Workspace, out: Path,
                     figs: list[Path]) -> tuple[str, str]:
    if not trains:
        return "no training runs", ('<p class="muted">No training runs yet: <code>fercurate train --manifest '
                                    "manifests/NAME.parquet --split train --val-split val --out runs/NAME</code></p>")
    blocks = []
    for anchor, run in trains:
        name = _rel(run.folder, ws)
        png = figures.training_curves(run.records, f"{name}: loss, accuracy and learning rate", out / f"{anchor}_curves.png")
        figs.append(png)
        cfg = run.state.get("config", {}) or {}
        attention = ""
        if cfg.get("arch") == "ran" and not any("val_mu_mean" in r for r in run.records):
            attention = ('<p class="muted">This run logged no attention statistics (it predates them, or had no '
                         "validation split); the attention weights per crop of each evaluation are under "
                         "Evaluation.</p>")
        full = table(["setting", "value"], [[k, _value(v)] for k, v in sorted(cfg.items())], left=2) if cfg else ""
        blocks.append(
            f'<h3 id="{anchor}">{esc(name)}</h3>'
            + unreadable_list(run.unreadable)
            + figure(png.name, f"{name}: from metrics.jsonl ({len(run.records):,} records)")
            + attention
            + table(["setting", "value"], run_settings(run, ws), left=2)
            + (f"<details><summary>full training config</summary>{full}</details>" if full else "")
        )
    return f"{len(trains)} training runs", "".join(blocks)


# --- evaluation -------------------------------------------------------------------------------------


def explain_n(ev: sources.EvalRun, group: dict[str, Any], members: set[str] | None) -> tuple[str, list[tuple[str, int]]]:
    """What a group's n counts and what it leaves out: (sentence, [(reason, count), ...])."""
    n = int(group.get("n") or 0)
    left_out: list[tuple[str, int]] = []
    if ev.predictions is not None:
        scored = set(ev.predictions["sample_id"])
        unl = set(ev.predictions.loc[ev.predictions["label"] < 0, "sample_id"])
        excl = ev.excluded if ev.excluded is not None else pd.DataFrame(columns=["sample_id", "kind", "reason"])
        if members is not None:
            excl = excl[excl["sample_id"].isin(members)]
            unl &= members
            outside = len(members - scored - set(excl["sample_id"]))
        else:
            outside = 0
        reasons = pd.Series([_reason(k, r) for k, r in zip(excl["kind"].astype(str), excl["reason"].astype(str))],
                            dtype=object)
        left_out += [(f"not scored ({r})", int(c)) for r, c in reasons.value_counts().items()]
        if unl:
            left_out.append(("without a label in the label space (scored, not counted)", len(unl)))
        if outside:
            left_out.append(("not in the evaluated split(s)", outside))
    else:
        if group.get("unlabelled"):
            left_out.append(("without a label", int(group["unlabelled"])))
        if group.get("excluded"):
            left_out.append(("not scored (unreadable image or label outside the label space)", int(group["excluded"])))
    name = group["group"]
    if members is not None and not members:
        return f"{name}: the subset has no faces, so there is no accuracy and no confusion matrix.", left_out
    whole = f"of the subset's {len(members):,} faces" if members is not None else "faces of the split"
    if n == 0:
        text = f"{name}: no face was scored with a label, so there is no accuracy and no confusion matrix"
    else:
        text = f"{name}: n = {n:,} {whole} (scored, with a label)"
    if left_out:
        text += "; left out: " + ", ".join(f"{c:,} {r}" for r, c in left_out)
    return text + ".", left_out


def _reason(kind: str, reason: str) -> str:
    """What an excluded row is counted under: a label rule's sentence without the row's votes, an unreadable
    image's reason without its path."""
    return reason.split(" (", 1)[0] if kind == "label rule" else reason.rsplit(": ", 1)[-1]


def _thousands(text: str) -> str:
    """'16252 of its 17989' -> '16,252 of its 17,989' (numbers in eval's notes)."""
    return re.sub(r"(?<![\d.,])\d{4,}(?![\d.,])", lambda m: f"{int(m.group()):,}", text)


def _ci(group: dict[str, Any]) -> str:
    ci = (group.get("ci95") or {}).get("accuracy")
    if not ci or any(missing(v) for v in ci):
        return "—"
    return f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}"


def _attention(ev: sources.EvalRun, anchor: str, out: Path, figs: list[Path]) -> str:
    p = ev.predictions
    if p is None or "mu_0" not in p.columns:
        return ""
    mu = p[[c for c in p.columns if c.startswith("mu_")]].to_numpy(dtype=float)
    nu_cols = [c for c in p.columns if c.startswith("nu_")]
    nu = p[nu_cols].to_numpy(dtype=float) if nu_cols else None
    png = figures.attention_bars(mu, nu, f"RAN attention per crop over {len(p):,} faces", out / f"{anchor}_attention.png")
    figs.append(png)
    return figure(png.name, "RAN's attention weights per crop (median and 10th-90th percentile over the scored faces)", 640)


def _leaderboard(group: str, published: Sequence[dict], g: dict, classes: int, model: str) -> str:
    """This eval's row placed among the published results on the same subset and class count."""
    ours = 100 * float(g["accuracy"])
    ranked = [(float(r["accuracy"]), [Raw(f"{r['accuracy']:.2f}"), r["method"], r["backbone"], r["pretraining"],
                                      r["num_classes"], f"{r['paper'].split(' (')[0]} {r['table']}", r.get("notes") or ""])
              for r in published]
    ranked.append((ours, [Raw(f"<b>{ours:.2f}</b>"), Raw("<b>this eval</b>"), model, "", classes, "",
                          f"n = {int(g['n']):,}"]))
    ranked.sort(key=lambda item: -item[0])
    return (f"<h4>{esc(group)}: published results on the same faces and class count</h4>"
            + table(["accuracy %", "method", "backbone", "pre-training", "classes", "source", "notes"],
                    [row for _, row in ranked], left=7))


def evaluation_section(evals: Sequence[tuple[str, sources.EvalRun]], trains: Sequence[tuple[str, sources.TrainRun]],
                       ws: Workspace, out: Path, figs: list[Path]) -> tuple[str, str]:
    if not evals:
        return "no evaluations", ('<p class="muted">No evaluations yet: <code>fercurate eval --model runs/NAME/ran.pt '
                                  "--subset pose45 --report runs/NAME/eval</code></p>")
    by_folder = {run.folder: a for a, run in trains}
    blocks = []
    for anchor, ev in evals:
        manifest_name = sources.eval_manifest_name(ev)
        rule = sources.eval_label_rule(ev)
        labels = list(ev.metrics.get("labels") or [])
        rows, pics, explained, boards = [], [], [], []
        for g in ev.groups:
            info = sources.resolve_subset(ws, manifest_name, str(g["group"]))
            members = None if info is None else subset_ids(info)
            text, _ = explain_n(ev, g, members)
            n = int(g.get("n") or 0)
            made = "split" if info is None else sources.subset_kind(info.name)
            published = g.get("published") or []
            rows.append([g["group"], made, n, Raw(pct(g.get("accuracy"))) if n else Raw("—"), rule,
                         _ci(g) if n else "—", Raw(pct(g.get("mean_class_accuracy"))) if n else Raw("—"),
                         g.get("list") or "—"])
            if published and n:
                boards.append(_leaderboard(str(g["group"]), published, g, len(labels), _rel(ev.model, ws)))
            explained.append(text)
            if n and labels and g.get("confusion"):
                png = figures.confusion_pair(np.asarray(g["confusion"]), labels,
                                             f"{g['group']}: accuracy {pct(g.get('accuracy'))} over {n:,} faces",
                                             out / f"{anchor}_confusion_{_slug(str(g['group']))}.png")
                figs.append(png)
                pics.append(figure(png.name, "Confusion matrix, counts and row-normalised (click for full size). "
                                             + text))
        model = ev.model
        run_anchor = by_folder.get(model.parent.resolve()) if model is not None else None
        prov = [["eval folder", _rel(ev.folder, ws)], ["metrics.json written", _written(ev.folder / "metrics.json")],
                ["model", Raw(esc(_rel(model, ws)) + (" (" + link(f"#{run_anchor}", "its training run") + ")"
                                                       if run_anchor else ""))],
                ["model kind", ev.metrics.get("model_kind", "—")],
                ["manifest", _rel(Path(str(ev.metrics.get("manifest"))) if ev.metrics.get("manifest") else None, ws)
                 if not ev.manifest else _rel(ev.manifest, ws)],
                ["manifest SHA-256 now", _sha_now(ev.manifest) or "—"],
                ["rows not scored", f"{int(ev.metrics.get('excluded', 0)):,}"]]
        if ev.metrics.get("environment"):
            scored_sha = ev.metrics.get("manifest_sha256")
            same = "unchanged since" if scored_sha and scored_sha == _sha_now(ev.manifest) else "CHANGED since"
            prov += [["manifest SHA-256 when scored", f"{scored_sha or '—'} ({same} scoring)"],
                     ["started", str(ev.metrics.get("started_at", "—"))],
                     ["duration", f"{float(ev.metrics.get('seconds', 0.0)):,.1f} s"],
                     *environment_rows(ev.metrics["environment"])]
        else:
            prov.append(["not recorded by fercurate eval", NOT_RECORDED_EVAL])
        title = f"{model.name if model else '?'} on {manifest_name}"
        noted = [f"fercurate eval noted: {_thousands(str(x))}" for x in ev.metrics.get("notes", [])]
        if rule == "not recorded":
            noted.append("label rule: not recorded (an eval from before fercurate recorded it; on a vote-labelled "
                         "manifest its accuracies followed the manifest's top vote, ties to the first class)")
        body_notes = "".join(f"<li>{esc(x)}</li>" for x in [*explained, *noted])
        blocks.append(
            f'<h3 id="{anchor}">{esc(title)}</h3>'
            + unreadable_list(ev.unreadable)
            + table(["group", "made by", "n", "accuracy", "label rule", "95% CI", "mean per-class", "scored list"],
                    rows, left=2)
            + (f"<ul>{body_notes}</ul>" if body_notes else "")
            + "".join(boards)
            + "".join(pics) + _attention(ev, anchor, out, figs)
            + "<details><summary>provenance</summary>" + table(["", ""], prov, left=2) + "</details>"
        )
    note = ('<p class="muted">Accuracy is over the labelled faces that were scored; 95% CI by bootstrap. Published '
            "results (RAN, SCAN-CCI, MA-Net, each with its table; <code>fercurate leaderboard</code>) stand only beside "
            "a group scored on the same faces the paper scored (the official lists, or the whole test split) with the "
            "same class count; fercurate's estimator subsets are other faces and get none.</p>")
    return f"{len(evals)} evaluations", note + "".join(blocks)

