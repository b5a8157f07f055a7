"""Occlusion suggestions: the scorer's scores as a layer that sorts the labelling queue, and pre-filled types.

The scorer (:mod:`fercurate.scorer`) works on 48x48 grayscale face crops (the FERPlus format; other
datasets are cropped to their face box and resized, the crop RAN's data uses). By default it is a
small CNN trained from scratch; with ``ScorerConfig.backbone`` it is the ResNet-18 of an expression
model trained with ``fercurate train`` (its faces upsampled to the model's input size), which scores
better once labels exist (see the benchmark). Either way it is trained here, offline, on our own
data: pre-trained on up to ``pool`` faces of the manifest (the scored rows plus a seeded sample of
the others) with synthetic occluders and the manifest's expression labels, then fine-tuned on the
occlusion labels people already gave (when there are at least ``min_labels`` per class): human
labels from the annotation table (``none`` is a negative) and official list entries, or an explicit
label table (the benchmark's held-out protocol). See :mod:`fercurate.scorer.train`.

Every face of the chosen rows gets ``score`` (higher = more likely occluded) and per-type
probabilities, written to the layer ``manifests/<name>.occlusion_suggest.parquet`` (the App sorts
its queue by it). Faces without a human label get a suggestion event (source ``suggestion``,
annotator ``fercurate-suggest``): the most likely type(s) for the top ``prefill_occluded`` fraction
by score, ``none`` for the bottom ``prefill_clean`` fraction, nothing in between. A person confirms
them in the App ("Accept suggestion"); they never count as labels. Same inputs + seed + thread count
give the same scores on the CPU.

Faces flagged by ``fercurate quality nonface`` (the ``nonface`` layer, when it exists) are left out:
not pre-trained on, not scored (null score: they sort last in the App's queue, with the reason in
``excluded``) and never pre-filled. Before the bulk of the training, the scorer reports the expected
duration measured on its first batches; :meth:`ScorerConfig.fast` is a quicker preset.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from fercurate.annotate.dataset import SUGGEST_LAYER, suggestion_layer_path
from fercurate.annotations import append_events, latest_labels, make_event, read_events
from fercurate.compat import moved_module
from fercurate.errors import InputError
from fercurate.layers import read_layer, write_layer
from fercurate.manifest import Manifest, read_manifest
from fercurate.schema import OCCLUDED_TYPES
from fercurate.scorer import cache as pretrain_cache
from fercurate.scorer import config as scorer_config
from fercurate.scorer import faces as scorer_faces
from fercurate.scorer import targets as scorer_targets
from fercurate.scorer import train as scorer_train
from fercurate.scorer.config import ScorerConfig
from fercurate.scorer.model import check_backbone
from fercurate.workspace import Workspace, layer_path

SUGGEST_ANNOTATOR = "fercurate-suggest"
TYPE_COLUMNS: tuple[str, ...] = tuple(f"p_{k}" for k in OCCLUDED_TYPES)
SUGGEST_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("score", pa.float32()),
        *[pa.field(c, pa.float32()) for c in TYPE_COLUMNS],
        pa.field("suggested", pa.list_(pa.string())),
        pa.field("failure", pa.string()),
        pa.field("excluded", pa.string()),  # why the face was not scored (a non-face from quality)
    ]
)
# The scorer moved to fercurate.scorer (its config is ScorerConfig there); these old names still import.
__getattr__ = moved_module(__name__, "fercurate.scorer.config", {
    "TrainConfig": "fercurate.scorer.config:ScorerConfig",
    "TIMED_BATCHES": "fercurate.scorer.estimate:TIMED_BATCHES",
    "load_faces": "fercurate.scorer.faces:load_faces",
    "build_net": "fercurate.scorer.model:build_net",
    "predict": "fercurate.scorer.model:predict",
    "label_targets": "fercurate.scorer.targets:label_targets",
    "table_labels": "fercurate.scorer.targets:table_labels",
    "train_scorer": "fercurate.scorer.train:train_scorer",
})


@dataclass
class SuggestResult:
    """What ``suggest`` wrote and how the scorer was trained."""

    layer: Path
    scored: int
    failures: list[tuple[str, str]]
    events_added: int
    training: dict[str, Any] = field(default_factory=dict)
    scores: pd.DataFrame | None = None
    excluded: int = 0  # non-faces (quality's nonface layer) left out of ranking and pre-fill

    def summary(self) -> str:
        t = self.training
        tuned = (f"fine-tuned on {t['label_pos']:,} occluded / {t['label_neg']:,} clean labelled faces"
                 if t.get("finetuned") else "no fine-tuning (too few labels)")
        pre = "synthetic occlusion + expression" if t.get("expression") else "synthetic occlusion"
        lines = [
            f"scored {self.scored:,} faces -> {self.layer} ({t.get('method', scorer_config.METHOD)}: "
            f"{t.get('pretrain_steps', 0):,} batches of {pre} on {t.get('pretrain_faces', 0):,} faces, {tuned})",
            f"{self.events_added:,} suggestion events added (shown in the App as occ_suggested)",
        ]
        if self.excluded:
            lines.append(f"{self.excluded:,} non-face(s) from 'fercurate quality nonface' excluded from ranking and pre-fill")
        if self.failures:
            sid, why = self.failures[0]
            lines.append(f"{len(self.failures):,} image(s) could not be read, e.g. {sid}: {why}")
        return "\n".join(lines)


def suggest(
    manifest_path: str | os.PathLike,
    *,
    split: str | None = None,
    workspace: Workspace | None = None,
    config: ScorerConfig | None = None,
    train_labels: pd.DataFrame | None = None,
    use_table_labels: bool = True,
    prefill_occluded: float = 0.15,
    prefill_clean: float = 0.3,
    write_events: bool = True,
    workers: int | None = None,
    exclude_nonfaces: bool = True,
    report: Callable[[str], None] | None = None,
) -> SuggestResult:
    """Score every face of the manifest (or ``split``), write the suggestion layer and events.

    ``train_labels`` (output of :func:`fercurate.scorer.targets.label_targets`) replaces the labels read from the table;
    ``use_table_labels=False`` trains on synthetic occlusions only. With ``exclude_nonfaces``, rows
    flagged in the manifest's ``nonface`` layer (``fercurate quality nonface``) are neither trained
    on, scored nor pre-filled. ``report`` receives the expected training time before most of it runs.
    """
    ws = workspace or Workspace.current()
    config = config or ScorerConfig()
    if not (0 <= prefill_occluded <= 1 and 0 <= prefill_clean <= 1 and prefill_occluded + prefill_clean <= 1):
        raise InputError("prefill fractions must be in [0, 1] and add up to at most 1")
    backbone_id = check_backbone(config.backbone)
    scorer_train.device_for(config)  # a CUDA request without a GPU fails here, before any face is loaded
    full = read_manifest(ws.resolve_manifest(manifest_path))
    manifest = full.where_split(split) if split else full
    in_split = np.isin(full.table.column("split").cast(pa.string()).to_numpy(zero_copy_only=False), [split]) \
        if split else np.ones(len(full), bool)
    loaded_mask = in_split | scorer_train.pool_extra(in_split, config)
    loaded = full.select(loaded_mask)
    faces, ok_all, failures_all = scorer_faces.load_faces(loaded, workers=workers, workspace=ws)
    scored = in_split[loaded_mask]
    ids = np.asarray(manifest.table.column("sample_id").to_pylist(), dtype=object)
    nonfaces = nonface_reasons(full.path) if exclude_nonfaces else {}
    not_face = np.isin(np.asarray(loaded.table.column("sample_id").to_pylist(), dtype=object), list(nonfaces))
    ok_all = ok_all & ~not_face  # readable faces: what is trained on and scored
    faces_scored, ok = faces[scored], ok_all[scored]
    excluded = not_face[scored]
    scored_ids = set(ids)
    failures = [f for f in failures_all if f[0] in scored_ids]
    if ok.sum() < 2:
        raise InputError(f"{manifest.path}: fewer than two readable faces to learn from"
                         + (f" ({int(excluded.sum())} non-faces excluded)" if excluded.any() else ""))
    expressions = loaded.table.column("label_id").to_numpy().astype(np.int64)
    events = read_events(ws.annotation_path(manifest.name))
    if train_labels is None and use_table_labels:
        train_labels = scorer_targets.table_labels(events)
    labelled = None
    if train_labels is not None and len(train_labels):
        index = {sid: i for i, sid in enumerate(ids)}
        rows = [(index[s], k) for k, s in enumerate(train_labels["sample_id"]) if s in index and ok[index[s]]]
        if rows:
            pick = np.array([r[0] for r in rows])
            tgt = train_labels[["occluded", *OCCLUDED_TYPES]].to_numpy(np.float32)[[r[1] for r in rows]]
            labelled = (faces_scored[pick], tgt)
    cache = pretrained_path(full.path)
    key = pretrain_cache.pretrain_key(config, loaded.table.column("sample_id").to_pylist(), ok_all, backbone_id)
    cached = pretrain_cache.load_pretrained(cache, key)
    if report is not None and excluded.any():
        report(f"excluding {int(excluded.sum()):,} non-face(s) flagged by 'fercurate quality nonface' from ranking and pre-fill")
    _, training, scores, state = scorer_train.train_scorer(faces[ok_all], expressions[ok_all], config, labelled,
                                                           faces_scored[ok], pretrained=cached, report=report)
    if cached is None:
        pretrain_cache.save_pretrained(cache, key, state)
    training["pool_unreadable"] = len(failures_all) - len(failures)
    probs = np.full((len(ids), 1 + len(OCCLUDED_TYPES)), np.nan, np.float32)
    probs[ok] = scores
    suggested = _prefill(probs, ok, prefill_occluded, prefill_clean)
    reasons = dict(failures)
    table = pa.table(
        {
            "sample_id": pa.array(ids.tolist(), pa.string()),
            "score": pa.array(probs[:, 0], pa.float32(), mask=~ok),
            **{c: pa.array(probs[:, 1 + j], pa.float32(), mask=~ok) for j, c in enumerate(TYPE_COLUMNS)},
            "suggested": pa.array(suggested, pa.list_(pa.string())),
            "failure": pa.array([reasons.get(s) for s in ids], pa.string()),
            "excluded": pa.array([f"non-face: {nonfaces[s]}" if s in nonfaces else None for s in ids], pa.string()),
        },
        schema=SUGGEST_SCHEMA,
    )
    layer = suggestion_layer_path(full.path)
    training.update(method=config.method, backbone=config.backbone, backbone_sha256=backbone_id or None,
                    seed=config.seed, threads=config.threads, split=split, nonfaces_excluded=int(excluded.sum()),
                    prefill_occluded=prefill_occluded, prefill_clean=prefill_clean)
    write_layer(table, layer, layer=SUGGEST_LAYER, manifest=full.name, provenance=training)
    added = _write_events(ws, manifest, ids, suggested, probs, events, config.method) if write_events else 0
    frame = pd.DataFrame({"sample_id": ids, "score": probs[:, 0], "suggested": suggested, "ok": ok})
    return SuggestResult(layer, int(ok.sum()), failures, added, training, frame, int(excluded.sum()))


def nonface_reasons(manifest_path: str | os.PathLike) -> dict[str, str]:
    """sample_id -> reasons for the rows ``fercurate quality nonface`` flagged ({} without its layer)."""
    path = layer_path(manifest_path, "nonface")
    if not path.exists():
        return {}
    table, _ = read_layer(path, "nonface")
    flagged = table.filter(pa.compute.fill_null(table.column("flagged"), False))
    return {sid: "; ".join(r or ["flagged"]) for sid, r in
            zip(flagged.column("sample_id").to_pylist(), flagged.column("reasons").to_pylist())}


def pretrained_path(manifest_path: str | os.PathLike) -> Path:
    """``manifests/<name>.occlusion_suggest.pretrained.pt``: the pre-trained weights, reused when
    ``suggest`` runs again on the same faces with the same settings (then only fine-tuning runs)."""
    layer = suggestion_layer_path(manifest_path)
    return layer.with_name(layer.name.replace(".parquet", ".pretrained.pt"))


def _prefill(probs: np.ndarray, ok: np.ndarray, top: float, bottom: float) -> list[list[str] | None]:
    """Types for the top ``top`` fraction by score, ``none`` for the bottom ``bottom`` fraction."""
    out: list[list[str] | None] = [None] * len(probs)
    idx = np.flatnonzero(ok)
    if not len(idx):
        return out
    order = idx[np.argsort(-probs[idx, 0], kind="stable")]
    n_top, n_bottom = int(round(top * len(order))), int(round(bottom * len(order)))
    for i in order[:n_top]:
        p = probs[i, 1:]
        best = int(np.argmax(p))
        picked = {OCCLUDED_TYPES[best]} | {OCCLUDED_TYPES[j] for j in np.flatnonzero(p >= 0.5)}
        out[i] = sorted(picked)
    for i in order[len(order) - n_bottom:] if n_bottom else []:
        out[i] = ["none"]
    return out


def _write_events(
    ws: Workspace, manifest: Manifest, ids: np.ndarray, suggested: list[list[str] | None], probs: np.ndarray,
    events: pa.Table, method: str,
) -> int:
    """Suggestion events for faces that have a suggestion and no human label yet."""
    humans = set(latest_labels(events, source="human")["sample_id"])
    when = datetime.now(timezone.utc)
    new = [
        make_event(sid, types, annotator=SUGGEST_ANNOTATOR, source="suggestion", labelled_at=when,
                   origin=method, note=f"score={probs[i, 0]:.3f}")
        for i, (sid, types) in enumerate(zip(ids, suggested))
        if types and sid not in humans
    ]
    if not new:
        return 0
    added, _ = append_events(ws.annotation_path(manifest.name), new)
    return added


__all__ = [
    "SUGGEST_ANNOTATOR",
    "SUGGEST_SCHEMA",
    "SuggestResult",
    "nonface_reasons",
    "pretrained_path",
    "suggest",
]
