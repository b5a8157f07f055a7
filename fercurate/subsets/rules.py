"""Building subsets by rule: Pose-T from the pose layer, Occlusion from the labels, leak-free ``-clean`` copies.

Each rule writes its members with the value it compared (see :mod:`fercurate.subsets.store`);
:func:`build` is ``fercurate subsets build`` (the official lists' subsets come from
:func:`fercurate.subsets.official.official_subsets`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fercurate.annotations import LABEL_SOURCES, latest_labels, occlusion_types_present, read_events
from fercurate.errors import InputError
from fercurate.layers import read_layer
from fercurate.manifest import Manifest, read_manifest
from fercurate.schema import POSE_LAYER_SCHEMA
from fercurate.subsets.names import ESTIMATED_SUFFIX, LABELLED_NAME
from fercurate.subsets.official import official_subsets
from fercurate.subsets.store import SubsetInfo, subset_ids, write_subset
from fercurate.workspace import Workspace, layer_path


def pose_subsets(
    manifest: Manifest,
    thresholds: Iterable[float],
    *,
    calibration: str | None = None,
    workspace: Workspace | None = None,
) -> list[SubsetInfo]:
    """Pose-T subsets: ``max(|yaw|, |pitch|) > T`` from the pose layer (roll ignored, as in the paper).

    Rows whose pose failed are not members. With ``calibration`` (e.g. ``openface``) the compared
    value is the calibrated score from :mod:`fercurate.pose.calibration`; the pose layer's angles
    are left as they are.
    """
    lp = layer_path(manifest.path, "pose")
    if not lp.exists():
        raise InputError(f"{lp}: no pose layer; run 'fercurate pose {manifest.path}' first")
    table, meta = read_layer(lp, "pose", columns=("sample_id", "yaw", "pitch", "failure"), schema=POSE_LAYER_SCHEMA)
    ok = pc.is_null(table.column("failure")).to_numpy(zero_copy_only=False)
    yaw = table.column("yaw").to_numpy(zero_copy_only=False).astype(np.float64)
    pitch = table.column("pitch").to_numpy(zero_copy_only=False).astype(np.float64)
    if calibration:
        from fercurate.pose.calibration import calibrated_score

        score = np.asarray(calibrated_score(table, calibration), dtype=np.float64)
        rule_value = f"{calibration}-calibrated pose score"
    else:
        score = np.maximum(np.abs(yaw), np.abs(pitch))
        rule_value = "max(|yaw|,|pitch|)"
    ids = np.asarray(table.column("sample_id").to_pylist(), dtype=object)
    method = meta.get("provenance", {}).get("method", "pose")
    out = []
    for t in thresholds:
        member = ok & (np.nan_to_num(score, nan=-np.inf) > t)
        name = f"pose{t:g}" + (f"-{calibration}" if calibration else ESTIMATED_SUFFIX)
        out.append(
            write_subset(manifest, name, ids[member].tolist(), rule=f"{rule_value} > {t:g}", threshold=float(t),
                         values=score[member].tolist(), source=f"{lp.name} ({method})", workspace=workspace)
        )
    return out


def occlusion_subsets(manifest: Manifest, *, workspace: Workspace | None = None) -> list[SubsetInfo]:
    """Occlusion subset (samples with >= 1 occlusion type) plus one subset per type present."""
    ws = workspace or Workspace.current()
    ann = ws.annotation_path(manifest.name)
    if not ann.exists():
        raise InputError(
            f"{ann}: no occlusion labels yet; label in the App ('fercurate annotate launch') "
            "or import the official lists ('fercurate import-ran-lists')"
        )
    labels = latest_labels(read_events(ann), source=LABEL_SOURCES)  # suggestions are not labels
    in_manifest = set(manifest.table.column("sample_id").to_pylist())
    labels = labels[labels["sample_id"].isin(in_manifest)]
    src = f"{ann.name} (current labels)"
    occluded = labels[labels["occluded"]]
    out = [write_subset(manifest, LABELLED_NAME, occluded["sample_id"].tolist(), rule="occlusion types ∌ none",
                        source=src, workspace=ws)]
    for t in occlusion_types_present(labels):
        members = labels[labels["types"].map(lambda ts, t=t: t in ts)]["sample_id"].tolist()
        out.append(write_subset(manifest, f"{LABELLED_NAME}-{t}", members, rule=f"occlusion type = {t}",
                                source=src, workspace=ws))
    return out


def build(
    manifest_path: str | os.PathLike,
    *,
    pose: Sequence[float] = (),
    calibration: str | None = None,
    occlusion: bool = False,
    official: bool = False,
    exclude_leaked: bool = False,
    workspace: Workspace | None = None,
) -> list[SubsetInfo]:
    """Build the requested subsets of one manifest; same as ``fercurate subsets build``."""
    ws = workspace or Workspace.choose(manifest=manifest_path)
    manifest = read_manifest(manifest_path)
    if not (pose or occlusion or official or exclude_leaked):
        raise InputError("nothing to build: pass --pose T, --occlusion, --official and/or --exclude-leaked")
    built: list[SubsetInfo] = []
    if pose:
        built += pose_subsets(manifest, pose, calibration=calibration, workspace=ws)
    if occlusion:
        built += occlusion_subsets(manifest, workspace=ws)
    if official:
        built += official_subsets(manifest, workspace=ws)
    if exclude_leaked:
        built += _clean_subsets(manifest, built, ws)
    return built


def _clean_subsets(manifest: Manifest, built: list[SubsetInfo], ws: Workspace) -> list[SubsetInfo]:
    """``<subset>-clean`` for each subset just built, and ``<split>-clean`` per split: leaked samples removed."""
    from fercurate.quality.leakage import leaked_sample_ids

    leaked = leaked_sample_ids(manifest, workspace=ws)
    out = []
    splits = manifest.table.column("split").cast(pa.string()).to_numpy(zero_copy_only=False)
    ids = np.asarray(manifest.table.column("sample_id").to_pylist(), dtype=object)
    for split in sorted(set(splits)):
        members = [i for i in ids[splits == split] if i not in leaked]
        out.append(write_subset(manifest, f"{split}-clean", members, rule=f"split = {split}, leaked samples excluded",
                                source="quality duplicates layer", workspace=ws))
    for info in built:
        members = [i for i in sorted(subset_ids(info)) if i not in leaked]
        out.append(write_subset(manifest, f"{info.name}-clean", members, rule=f"{info.rule}, leaked samples excluded",
                                source="quality duplicates layer", workspace=ws))
    return out
