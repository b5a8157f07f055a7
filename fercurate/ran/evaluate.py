"""Scoring a model on a manifest's split and subsets: ``fercurate eval``.

For every group (a split, and each subset within it) the report gives accuracy with a bootstrap 95%
confidence interval, mean per-class accuracy, a per-class table and the confusion matrix (JSON and PNG).
Where a group is a paper's test condition (the whole test split, or an official RAN list such as
``pose45``), the scored model's row is placed among the published results on that condition with the
same class count (:mod:`fercurate.published`), each citing its table; fercurate's own estimated subsets
(``pose45-estimated``) are never shown beside a paper figure. RAN's attention weights per crop are saved
for every face and can be drawn on sample faces.

The settings are one :class:`~fercurate.ran.config.EvalConfig`. Models and their contracts (label
order, input size, channels, normalisation) are loaded by :mod:`fercurate.ran.predictor`; the groups
and their scores are :mod:`fercurate.ran.scoring`'s, the tables and report files
:mod:`fercurate.ran.eval_report`'s. Each evaluation writes its own report folder and refuses to
overwrite one without ``overwrite=True``.
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from fercurate.compat import moved_module
from fercurate.errors import InputError
from fercurate.manifest import Manifest, read_manifest
from fercurate.provenance import environment, now_utc
from fercurate.ran import data as rdata
from fercurate.ran.checkpoint import file_sha256
from fercurate.ran.config import EvalConfig
from fercurate.ran.eval_report import claim_report_dir, format_results, probs_frame, write_probs, write_report
from fercurate.ran.metrics import accuracy_summary, bootstrap_ci, confusion_matrix
from fercurate.ran.predictor import Predictor, describe, load_predictor, pick_device, run_model
from fercurate.ran.scoring import LabelRule, Scored, apply_label_rule, build_groups, choose_label_rule, reason_key, score_groups
from fercurate.subsets import SubsetInfo
from fercurate.workspace import Workspace

__all__ = [
    "EvalConfig", "EvalResult", "Predictor", "accuracy_summary", "bootstrap_ci", "confusion_matrix", "evaluate",
    "load_predictor", "pick_device", "predict_proba", "run_model",
]


# --- the evaluation command ----------------------------------------------------------------------------


@dataclass
class EvalResult:
    """What :func:`evaluate` scored: each group as ``metrics.json`` gives it, the excluded rows, the table."""

    report_dir: Path | None
    groups: list[dict[str, Any]]
    excluded: list[dict[str, str]]
    table: str
    probs_path: Path | None = None


def _resolve_inputs(
    predictor: Predictor, manifest: str | None, subsets: list[str], ws: Workspace
) -> tuple[Manifest, list[tuple[str, SubsetInfo, set[str]]], str | None]:
    """The manifest to read, each subset (name asked for, what it resolved to, its ids) and, when no
    --manifest or subset named it, how the manifest was chosen.

    Every subset must belong to that manifest. Paper names (``pose45``) resolve to the official list
    where one is imported (see :func:`fercurate.subsets.find_subset`).
    """
    from fercurate.subsets import find_subset, subset_ids

    infos, chosen = [], None
    if manifest is not None:
        mpath = ws.resolve_manifest(manifest)
        m = read_manifest(mpath)
        for s in subsets:
            if s.endswith(".parquet"):
                info = find_subset(s, workspace=ws)
            else:
                try:
                    info = find_subset(s, manifest=m.name, workspace=ws)
                except InputError as exc:
                    others = [i for i in _all_subsets(ws) if i.name == s]
                    if others:
                        raise InputError(
                            f"subset {s!r} is not a subset of manifest {m.name!r} ({mpath}); it exists for "
                            f"{', '.join(sorted({o.manifest for o in others}))}"
                        ) from exc
                    raise
            if info.manifest != m.name:
                raise InputError(f"subset {info.name!r} ({info.path}) belongs to manifest {info.manifest!r}, not {m.name!r} ({mpath})")
            infos.append(info)
    elif subsets:
        infos = [find_subset(s, workspace=ws) for s in subsets]
        names = {i.manifest for i in infos}
        if len(names) > 1:
            raise InputError(f"the subsets belong to different manifests ({', '.join(sorted(names))}): pass --manifest")
        info = infos[0]
        mpath = info.manifest_path if info.manifest_path and info.manifest_path.exists() else ws.manifest_path(info.manifest)
        if not mpath.exists():
            raise InputError(f"subset {info.name!r}: its manifest {info.manifest!r} was not found ({mpath}); pass --manifest")
        m = read_manifest(mpath)
    elif predictor.manifest_path is not None and predictor.manifest_path.exists():
        m = read_manifest(predictor.manifest_path)
        chosen = "the manifest the checkpoint was trained on"
    else:
        m = read_manifest(_only_manifest(ws))
        chosen = f"the only manifest in the workspace {ws.root}"
    asked = [s if not s.endswith(".parquet") else i.name for s, i in zip(subsets, infos)]
    return m, [(a, i, subset_ids(i)) for a, i in zip(asked, infos)], chosen


def _only_manifest(ws: Workspace) -> Path:
    """With no --manifest, no subset and a model that names none: the workspace's manifest, when it holds one."""
    names = ws.manifest_names()
    if len(names) == 1:
        return ws.manifest_path(names[0])
    found = f"the workspace {ws.root} holds {len(names)} manifests ({', '.join(names)})" if names else \
        f"the workspace {ws.root} holds no manifest ({ws.manifests})"
    raise InputError(f"nothing to evaluate on: {found}; pass --manifest NAME or a path (and --split / --subset), "
                     "or -w the workspace of the data")


def _all_subsets(ws: Workspace):  # noqa: ANN202
    from fercurate.subsets import list_subsets

    return list_subsets(ws)


# keyword names evaluate() took before EvalConfig, where the setting is named otherwise now
_OLD_KEYWORDS = {"n_boot": "bootstrap", "workers": "decode_workers"}


def _eval_config(config: EvalConfig | None = None, **settings: Any) -> EvalConfig:
    """``config`` (default: every setting's default) with the keyword ``settings`` put in."""
    for old, new in _OLD_KEYWORDS.items():
        if old in settings:
            warnings.warn(f"evaluate({old}=...) is now EvalConfig.{new}; pass {new}=...", DeprecationWarning,
                          stacklevel=3)
            settings[new] = settings.pop(old)
    known = {f.name for f in dataclasses.fields(EvalConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise TypeError(f"evaluate() got unknown settings {', '.join(unknown)} (EvalConfig has {', '.join(sorted(known))})")
    return dataclasses.replace(config or EvalConfig(), **settings)


def evaluate(
    model_path: str | os.PathLike,
    config: EvalConfig | None = None,
    *,
    workspace: Workspace | str | os.PathLike | None = None,
    echo: Callable[[str], Any] = print,
    **settings: Any,
) -> EvalResult:
    """Evaluate a model on a manifest's split(s) and subsets and write the report (see module doc).

    ``config`` holds the settings (:class:`~fercurate.ran.config.EvalConfig`); keyword ``settings`` name
    its fields and replace them (``evaluate(model, splits=["test"], bootstrap=200)``). ``workspace`` is the
    folder holding manifests/ and runs/ (a :class:`Workspace`, a path, or None: the manifest's workspace when
    it is given by path, else the current one).
    ``labels`` gives a TorchScript/ONNX model's output order (see :func:`fercurate.labels.parse_labels`),
    ``input_size`` / ``channels`` / ``layout`` / ``input_norm`` / ``outputs`` the rest of its contract
    (:mod:`fercurate.ran.contract`); ``label_rule`` which vote-labelled faces have a label. A report is
    written only with ``report_dir``.
    """
    started, t0 = now_utc(), time.perf_counter()
    config = _eval_config(config, **settings)
    ws = workspace if isinstance(workspace, Workspace) else Workspace.choose(workspace, manifest=config.manifest)
    predictor = load_predictor(model_path, device=config.device, input_size=config.input_size, labels=config.labels,
                               input_norm=config.input_norm, channels=config.channels, layout=config.layout,
                               outputs=config.outputs, override_contract=config.override_contract)
    m, subset_members, chosen = _resolve_inputs(predictor, config.manifest, list(config.subsets), ws)
    rule = choose_label_rule(m, config.label_rule)
    splits = list(dict.fromkeys(config.splits))
    if not splits and not config.subsets:
        present = set(m.table.column("split").cast(pa.string()).to_pylist())
        splits = ["test"] if "test" in present else []
    if config.report_dir:
        claim_report_dir(Path(config.report_dir), config.overwrite)
    scored = _score_faces(predictor, m, splits, subset_members, config, ws, rule)
    groups = build_groups(scored.samples, splits, subset_members, m.dataset, len(predictor.labels), rule=rule)
    score_groups(groups, scored, n_boot=config.bootstrap, seed=config.seed)
    notes = [*([f"manifest {m.name}: {chosen} ({m.path})"] if chosen else []), describe(predictor), rule.describe(),
             *(n for g in groups for n in g.notes)]
    table, boards = format_results(groups, predictor, m, rule)
    out_dir = Path(config.report_dir) if config.report_dir else None
    if out_dir is not None:
        run = {"started_at": started, "seconds": round(time.perf_counter() - t0, 2),
               "manifest_sha256": file_sha256(m.path), "environment": environment(predictor.device)}
        write_report(groups, config, scored, notes, run, rule)
    probs_path = None
    if config.save_probs:
        probs_path = write_probs(probs_frame(scored.samples.sample_ids, scored.probs), config.save_probs, predictor, m)
    echo(table)
    if boards:
        echo("\n" + boards)
    for note in notes:
        echo(f"note: {note}")
    excluded = list(scored.samples.excluded)
    if excluded:
        reasons = pd.Series([reason_key(e) for e in excluded]).value_counts()
        echo(f"not scored: {len(excluded):,} rows: " + "; ".join(f"{r} ({c:,})" for r, c in reasons.items())
             + (f" -> {out_dir / 'excluded.parquet'}" if out_dir else ""))
    unlabelled = int((scored.samples.labels < 0).sum())
    if unlabelled:
        echo(f"scored without a label (not counted in accuracy): {unlabelled:,} rows (label_id -1: no expression "
             f"class, e.g. an unknown / NF vote majority)" + (f" -> {out_dir / 'predictions.parquet'}" if out_dir else ""))
    if out_dir is not None:
        echo(f"report: {out_dir}")
    return EvalResult(out_dir, [g.as_dict() for g in groups], excluded, table, probs_path)


def _score_faces(predictor: Predictor, m: Manifest, splits: list[str],
                 subset_members: list[tuple[str, SubsetInfo, set[str]]], config: EvalConfig, ws: Workspace,
                 rule: LabelRule) -> Scored:
    """Select the rows to score (the label rule leaves some out), decode their faces and run the model over them."""
    union = set().union(*(ids for _, _, ids in subset_members)) if subset_members and not splits else None
    samples = rdata.select_samples(m, splits=splits, ids=union, num_classes=len(predictor.labels), require_labels=False)
    samples = apply_label_rule(samples, rule)
    cfg = predictor.config
    face_size = cfg.face_size if cfg is not None else predictor.input_size
    store = None
    if not config.cache and predictor.crops == "landmark" and predictor.align != "bbox":
        raise InputError(f"{predictor.path}: landmark crops of {predictor.align}-aligned faces need the face cache "
                         "(it keeps each face's alignment; drop --no-cache)")
    if config.cache:
        store = rdata.load_faces(samples, face_size, cache_dir=config.cache_dir or ws.root / "cache" / "faces",
                                 workers=config.decode_workers, desc="decode faces", align=predictor.align)
        samples, store = rdata.drop_failures(samples, store)
    else:
        samples = rdata.drop_missing_files(samples)
    excluded = samples.excluded
    failed = [e for e in excluded if e["kind"] == "unreadable"]
    if config.strict and failed:
        raise InputError(f"{len(failed)} images could not be read (first: {failed[0]['sample_id']}: {failed[0]['reason']})")
    if len(samples) == 0:
        raise InputError(f"{m.path}: no readable rows to evaluate ({excluded[0]['reason'] if excluded else 'empty selection'})")
    lms = rdata.landmark_fractions(samples, store) if predictor.crops == "landmark" else None
    res = run_model(predictor, samples, store, cfg, device=predictor.device, landmarks=lms,
                    batch_size=config.batch_size, desc="eval")
    return Scored(predictor, m, samples, store, lms, res["probs"], res["mu"], res["nu"])


def predict_proba(
    model_path: str | os.PathLike,
    manifest_path: str | os.PathLike,
    split: str | None = None,
    *,
    device: str = "auto",
    batch_size: int = 128,
    workers: int | None = None,
    labels: str | list[str] | None = None,
    workspace: Workspace | str | os.PathLike | None = None,
    **contract: Any,
) -> pd.DataFrame:
    """Class probabilities for every readable row of a manifest (or one split).

    Returns DataFrame(sample_id, prob_0 .. prob_{K-1}) with column j = canonical class j (K = 8, or 7 for
    7-class models). Rows whose image cannot be read are left out and listed in ``df.attrs['excluded']``.
    ``labels`` and ``contract`` (input_size, channels, layout, input_norm, outputs, override_contract) are
    a TorchScript/ONNX model's contract values, as :func:`fercurate.ran.predictor.load_predictor` takes them.
    """
    predictor = load_predictor(model_path, device=device, labels=labels, **contract)
    ws = workspace if isinstance(workspace, Workspace) else Workspace.choose(workspace, manifest=manifest_path)
    m = read_manifest(ws.resolve_manifest(str(manifest_path)))
    samples = rdata.select_samples(m, splits=[split] if split else [], num_classes=len(predictor.labels), require_labels=False)
    cfg = predictor.config
    face_size = cfg.face_size if cfg is not None else predictor.input_size
    store = rdata.load_faces(samples, face_size, cache_dir=ws.root / "cache" / "faces", workers=workers, desc="decode faces",
                             align=predictor.align)
    samples, store = rdata.drop_failures(samples, store)
    lms = rdata.landmark_fractions(samples, store) if predictor.crops == "landmark" else None
    res = run_model(predictor, samples, store, cfg, device=predictor.device, landmarks=lms, batch_size=batch_size,
                    desc="predict")
    df = probs_frame(samples.sample_ids, res["probs"])
    df.attrs["excluded"] = list(samples.excluded)
    df.attrs["labels"] = list(predictor.labels)
    return df



# the report's tables and files moved to fercurate.ran.eval_report
__getattr__ = moved_module(__name__, "fercurate.ran.eval_report")
