"""What the report reads from other commands' outputs, each in one small function.

Eval folders (``fercurate eval --report``), training runs (``fercurate train``) and subset names are
looked up only here, so a change of their names or file layout is one edit.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from fercurate.errors import InputError
from fercurate.workspace import Workspace


@dataclass
class EvalRun:
    """One ``fercurate eval --report`` folder: its metrics.json plus the per-row files beside it."""

    folder: Path
    metrics: dict[str, Any]
    model: Path | None  # the scored model file, resolved against the workspace
    manifest: Path | None
    predictions: pd.DataFrame | None  # sample_id, label, pred, confidence[, mu_j, nu_j]
    excluded: pd.DataFrame | None  # sample_id, kind, reason
    unreadable: list[str] = field(default_factory=list)  # files beside metrics.json that could not be read

    @property
    def groups(self) -> list[dict[str, Any]]:
        return list(self.metrics.get("groups", []))


@dataclass
class TrainRun:
    """One ``fercurate train`` folder: metrics.jsonl records and the checkpoint's settings."""

    folder: Path
    records: list[dict[str, Any]]
    checkpoint: Path | None
    state: dict[str, Any] = field(default_factory=dict)  # the checkpoint without weights and optimiser
    unreadable: list[str] = field(default_factory=list)  # what of the run could not be read, and why


def _resolve(ws: Workspace, value: str | None) -> Path | None:
    if not value:
        return None
    p = Path(value)
    return p if p.is_absolute() else ws.root / p


def find_eval_runs(ws: Workspace, extra: Sequence[str | os.PathLike] = ()) -> list[Path]:
    """Every eval folder (holding ``metrics.json``) under runs/ and eval/ (where ``fercurate eval`` writes
    reports of models kept outside runs/) and the ``extra`` folders."""
    found = set()
    for root in [ws.runs, ws.root / "eval", *map(Path, extra)]:
        if root.exists():
            found.update(p.parent.resolve() for p in root.rglob("metrics.json"))
    return sorted(found)


def _frame(path: Path, unreadable: list[str]) -> pd.DataFrame | None:
    """A per-row Parquet file of an eval, or None when absent or unreadable (said in ``unreadable``)."""
    try:
        return pd.read_parquet(path) if path.exists() else None
    except (OSError, pa.ArrowException) as exc:
        unreadable.append(f"{path}: not a readable Parquet file ({exc})")
        return None


def read_eval(folder: Path, ws: Workspace) -> EvalRun:
    """An eval folder's outputs; InputError naming metrics.json when it is no readable eval report."""
    path = folder / "metrics.json"
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))  # NaN reads as float nan
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    except ValueError as exc:
        raise InputError(f"{path}: not JSON ({exc}): a damaged eval report; run 'fercurate eval --report' "
                         "again") from exc
    if not isinstance(metrics, dict) or not isinstance(metrics.get("groups"), list):
        raise InputError(f"{path}: not a fercurate eval report (no 'groups' list)")
    unreadable: list[str] = []
    preds, excl = _frame(folder / "predictions.parquet", unreadable), _frame(folder / "excluded.parquet", unreadable)
    return EvalRun(folder, metrics, _resolve(ws, metrics.get("model")), _resolve(ws, metrics.get("manifest")), preds,
                   excl, unreadable)


def eval_label_rule(ev: EvalRun) -> str:
    """The label rule an eval's accuracies follow (``majority``, ``plurality``), or what stood in for one."""
    rule = ev.metrics.get("label_rule")
    if not isinstance(rule, dict):
        return "not recorded"
    return str(rule.get("rule") or "single labels")


def eval_manifest_name(ev: EvalRun) -> str:
    """The name of the manifest an eval scored (its file name without .parquet)."""
    return Path(str(ev.metrics.get("manifest", "?"))).name.removesuffix(".parquet")


def find_train_runs(ws: Workspace, extra: Sequence[str | os.PathLike] = ()) -> list[Path]:
    """Every training run folder (holding ``metrics.jsonl``) under runs/ and the ``extra`` folders."""
    found = set()
    for root in [ws.runs, *map(Path, extra)]:
        if root.exists():
            found.update(p.parent.resolve() for p in root.rglob("metrics.jsonl"))
    return sorted(found)


_HEAVY = ("model", "optimizer", "scheduler", "scaler", "rng")


def read_train_run(folder: Path) -> TrainRun:
    """A run's metrics.jsonl records and its checkpoint's settings (weights dropped); what could not be
    read (damaged log lines, an unreadable checkpoint) is listed in ``unreadable``, the rest still shown."""
    from fercurate.ran.runlog import FILE_NAME, read_records

    records, notes = read_records(folder / FILE_NAME, skip_damaged=True)
    ckpts = sorted(p for p in folder.glob("*.pt") if not p.name.endswith(".best.pt"))
    state: dict[str, Any] = {}
    if ckpts:
        import torch

        try:
            full = torch.load(ckpts[0], map_location="cpu", weights_only=True)
            state = {k: v for k, v in full.items() if k not in _HEAVY}
        except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint still leaves the curves
            notes.append(f"{ckpts[0]}: not a readable checkpoint ({str(exc).splitlines()[0][:120]})")
    return TrainRun(folder, records, ckpts[0] if ckpts else None, state, notes)


# Which subsets may be compared with the RAN paper's Table I (the paper used its own lists, built with
# OpenFace head pose and human occlusion labels): the official lists as imported, and pose subsets built
# with the OpenFace calibration. fercurate's own estimator subsets are a different measurement.
COMPARABLE = "official list"
CALIBRATED = "paper-compatible, OpenFace-calibrated"
ESTIMATOR = "fercurate estimator"
OTHER = "fercurate"


def subset_kind(name: str) -> str:
    """How a subset was made, from its name: official list, OpenFace-calibrated, fercurate estimator, other."""
    base = name.removesuffix("-clean")
    if base.startswith("official-"):
        return COMPARABLE
    if base.startswith("pose") and base.endswith("-openface"):
        return CALIBRATED
    if base.startswith("pose"):
        return ESTIMATOR
    return OTHER


# Table I counts faces of the evaluation set (FERPlus test, AffectNet validation: fercurate's "test" split).
PAPER_SPLIT = "test"


def subset_split_sizes(found: Sequence[Any]) -> dict[tuple[str, str], dict[str, int]]:
    """(manifest, subset) -> members per split of the manifest, for SubsetInfo-like objects."""
    from fercurate.subsets import subset_ids

    splits: dict[Path, pd.Series] = {}
    out = {}
    for s in found:
        mp = s.manifest_path
        if mp is None or not Path(mp).exists():
            continue
        if mp not in splits:
            t = pd.read_parquet(mp, columns=["sample_id", "split"])
            splits[mp] = pd.Series(t["split"].astype(str).to_numpy(), index=t["sample_id"].to_numpy())
        ids = list(subset_ids(s))
        counts = splits[mp].reindex(ids).dropna().value_counts()
        out[(s.manifest, s.name)] = {str(k): int(v) for k, v in counts.items()}
    return out


def paper_subset_key(name: str) -> str:
    """The Table I key of a subset file name: 'official-pose30' / 'pose30-openface' / 'pose30-estimated' -> 'pose30'."""
    from fercurate.subsets import paper_name

    return paper_name(name).replace("-or-", "|")


def published_size(dataset: str, name: str) -> tuple[int, str] | None:
    """The published size of the paper's subset behind a subset file name, with its source (RAN Table I ...)."""
    from fercurate.published import subset_size

    return subset_size(dataset, paper_subset_key(name))


def resolve_subset(ws: Workspace, manifest: str, name: str) -> Any | None:
    """The subset a group name means (``pose45`` -> the official list where imported); None for a split's group
    (or a subset file that cannot be read: the subsets section names it)."""
    from fercurate.subsets import find_subset

    try:
        return find_subset(name, manifest=manifest, workspace=ws)
    except InputError:
        return None
