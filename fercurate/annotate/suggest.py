"""Occlusion suggestions: a score per face that sorts the labelling queue, and pre-filled types.

The scorer works on 48x48 grayscale face crops (the FERPlus format; other datasets are cropped to
their face box and resized by :func:`fercurate.faces.crop.face_crop`, the crop RAN's data uses). By default it is a small CNN trained from scratch; with
``TrainConfig.backbone`` it is the ResNet-18 of an expression model trained with ``fercurate train``
(its faces upsampled to the model's input size), which scores better once labels exist (see the
benchmark). Either way it is trained here, offline, on our own data:

1. **pre-training** (no occlusion labels needed) on up to ``pool`` faces of the manifest (the
   scored rows plus a seeded sample of the others), two tasks at once: spotting synthetic
   occluders drawn on the faces (:mod:`fercurate.annotate.occluders`: mask, glasses, a hand or
   object over the forehead, mouth or one cheek; occluded? + which type) and recognising the
   manifest's own expression labels (which makes the network look at eyes, brows and mouth: the
   parts occluders hide).
2. **fine-tuning on occlusion labels people already gave** (when there are at least ``min_labels``
   per class): human labels from the annotation table (``none`` is a negative) and official list
   entries, or an explicit label table (the benchmark's held-out protocol). Scores average the
   predictions after each of the last half of the epochs.

Training and scoring run on CUDA when present (``TrainConfig.device``), else on the CPU. Every face
of the chosen rows gets ``score`` (higher = more likely occluded) and per-type probabilities,
written to the layer ``manifests/<name>.occlusion_suggest.parquet`` (the App sorts its queue by it).
Faces without a human label get a suggestion event (source ``suggestion``, annotator
``fercurate-suggest``): the most likely type(s) for the top ``prefill_occluded`` fraction by score,
``none`` for the bottom ``prefill_clean`` fraction, nothing in between. A person confirms them in
the App ("Accept suggestion"); they never count as labels. Same inputs + seed + thread count give
the same scores on the CPU.

Faces flagged by ``fercurate quality nonface`` (the ``nonface`` layer, when it exists) are left out:
not pre-trained on, not scored (null score: they sort last in the App's queue, with the reason in
``excluded``) and never pre-filled. Before the bulk of the training, :func:`train_scorer` reports
the expected duration measured on its first batches; :meth:`TrainConfig.fast` is a quicker preset.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from fercurate.annotate.dataset import SUGGEST_LAYER, suggestion_layer_path
from fercurate.annotate.occluders import KINDS, SIZE, synthetic_set
from fercurate.annotations import LABEL_SOURCES, append_events, latest_labels, make_event, read_events
from fercurate.errors import InputError
from fercurate.faces.crop import face_crop
from fercurate.images import ImageReadError, read_image
from fercurate.layers import write_layer
from fercurate.manifest import Manifest, read_manifest
from fercurate.parallel import map_chunks
from fercurate.progress import progress
from fercurate.schema import CANONICAL_LABELS
from fercurate.workspace import Workspace

if TYPE_CHECKING:
    import torch

METHOD = "cnn48-synthetic+expression"
BACKBONE_METHOD = "resnet18-checkpoint-synthetic+expression"
SUGGEST_ANNOTATOR = "fercurate-suggest"
TYPE_COLUMNS: tuple[str, ...] = tuple(f"p_{k}" for k in KINDS)
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
FAST_STEPS, FAST_POOL, FAST_EPOCHS = 200, 5_000, 4
TIMED_BATCHES = 3  # batches timed (after one untimed warm-up batch) to estimate the duration


@dataclass
class TrainConfig:
    """How the scorer is trained (the defaults take minutes of CPU; see the benchmark for timings)."""

    seed: int = 0
    steps: int = 800  # pre-training batches (synthetic occlusion + expression)
    pool: int = 30_000  # at most this many faces of the manifest to pre-train on
    finetune_epochs: int = 10
    min_labels: int = 20  # per class, to fine-tune on real labels
    batch: int = 64
    threads: int = 2
    backbone: str | None = None  # a fercurate checkpoint (baseline or RAN) whose ResNet-18 starts the scorer
    device: str = "auto"  # auto (CUDA if present, else CPU) | cpu | cuda | cuda:N

    @property
    def method(self) -> str:
        return BACKBONE_METHOD if self.backbone else METHOD

    @classmethod
    def fast(cls, **overrides: Any) -> "TrainConfig":
        """The ``--fast`` preset: 200 pre-training batches (a quarter of the default) on at most 5,000
        faces, 4 fine-tuning epochs; about 4x quicker, with a rougher ranking. ``overrides`` win."""
        return cls(**{"steps": FAST_STEPS, "pool": FAST_POOL, "finetune_epochs": FAST_EPOCHS, **overrides})


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
            f"scored {self.scored:,} faces -> {self.layer} ({t.get('method', METHOD)}: {t.get('pretrain_steps', 0):,} batches of "
            f"{pre} on {t.get('pretrain_faces', 0):,} faces, {tuned})",
            f"{self.events_added:,} suggestion events added (shown in the App as occ_suggested)",
        ]
        if self.excluded:
            lines.append(f"{self.excluded:,} non-face(s) from 'fercurate quality nonface' excluded from ranking and pre-fill")
        if self.failures:
            sid, why = self.failures[0]
            lines.append(f"{len(self.failures):,} image(s) could not be read, e.g. {sid}: {why}")
        return "\n".join(lines)


# --- faces ---------------------------------------------------------------------------------------


def _load_chunk(tasks: Sequence[tuple[str, tuple[float, float, float, float] | None]]) -> list[np.ndarray | str]:
    out: list[np.ndarray | str] = []
    for path, box in tasks:
        try:
            out.append(face_crop(read_image(path, color=False), box, SIZE))
        except ImageReadError as exc:
            out.append(str(exc).split(": ", 1)[-1])
    return out


def load_faces(manifest: Manifest, workers: int | None = None) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """48x48 grayscale face crops of every row (face box when the manifest has one), on all cores.

    Returns (faces (N, 48, 48) uint8, ok mask (N,), failures [(sample_id, reason)]); unreadable
    images are zeros in ``faces`` and rows in ``failures``, never silently dropped.
    """
    paths = [str(p) for p in manifest.image_paths()]
    boxes = manifest.table.column("bbox").to_pylist()
    tasks = [(p, None if b is None else (b["x"], b["y"], b["w"], b["h"])) for p, b in zip(paths, boxes)]
    faces = np.zeros((len(tasks), SIZE, SIZE), np.uint8)
    ok = np.ones(len(tasks), bool)
    failures: list[tuple[str, str]] = []
    ids = manifest.table.column("sample_id").to_pylist()
    i = 0
    for chunk in map_chunks(_load_chunk, tasks, workers=workers, chunk_size=512, desc="loading faces", unit="img"):
        for item in chunk:
            if isinstance(item, str):
                ok[i] = False
                failures.append((ids[i], item))
            else:
                faces[i] = item
            i += 1
    return faces, ok, failures


# --- the network ----------------------------------------------------------------------------------


def build_net(backbone: str | os.PathLike | None = None) -> "torch.nn.Module":
    """The scorer: ``body`` (faces -> features) and two heads, ``occlusion`` (1 + 5 logits: occluded,
    then each type) and ``expression`` (8 classes).

    Without ``backbone``: four conv blocks (16-32-64-128 channels) on 48x48 and global pooling
    (~100k weights). With ``backbone`` (a fercurate checkpoint): that model's ResNet-18 and input
    normalisation, its expression FC copied into the expression head.
    """
    from torch import nn

    if backbone is not None:
        return _backbone_net(backbone)

    def block(i: int, o: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))

    class OcclusionNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                block(1, 16), nn.MaxPool2d(2), block(16, 32), nn.MaxPool2d(2), block(32, 64), nn.MaxPool2d(2),
                block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
            )
            self.occlusion = nn.Linear(128, 1 + len(KINDS))
            self.expression = nn.Linear(128, len(CANONICAL_LABELS))

        def forward(self, x):  # noqa: ANN001, ANN202 - torch convention
            return self.occlusion(self.body(x))

    return OcclusionNet()


def _backbone_net(path: str | os.PathLike) -> "torch.nn.Module":
    """The ResNet-18 of a fercurate checkpoint as the scorer's body.

    The body takes the same normalised 1-channel 48x48 tensors as the small CNN: it undoes
    :func:`_tensor`'s normalisation, repeats the grey channel to RGB, resizes to the model's input
    size and applies the model's own input normalisation, so training and scoring code are shared.
    """
    import torch.nn.functional as F
    from torch import nn

    from fercurate.ran.backbone import FEATURE_DIM
    from fercurate.ran.checkpoint import load_checkpoint
    from fercurate.ran.model import model_from_checkpoint

    state = load_checkpoint(path)
    model = model_from_checkpoint(state)
    size = int(model.input_size)

    class ResNetBody(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm, self.backbone = model.norm, model.backbone

        def forward(self, x):  # noqa: ANN001, ANN202 - (B, 1, 48, 48) normalised grey -> (B, 512)
            rgb = (x * 0.25 + 0.5).expand(-1, 3, -1, -1)
            if rgb.shape[-1] != size:
                rgb = F.interpolate(rgb, size=(size, size), mode="bilinear", align_corners=False)
            return self.backbone.features(self.norm(rgb))

    class BackboneOcclusionNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = ResNetBody()
            self.occlusion = nn.Linear(FEATURE_DIM, 1 + len(KINDS))
            self.expression = nn.Linear(FEATURE_DIM, len(CANONICAL_LABELS))
            w = model.fc.weight.data  # (C, 512) baseline; (C, 1024) RAN, on P = [F_i : F_m]
            if w.shape[1] == 2 * FEATURE_DIM:
                w = w[:, :FEATURE_DIM] + w[:, FEATURE_DIM:]  # the whole face as RAN's only crop: P = [f : f]
            known = w.shape[0]  # 7 or 8 classes, in canonical order (checked on load)
            self.expression.weight.data[:known] = w
            self.expression.bias.data[:known] = model.fc.bias.data

        def forward(self, x):  # noqa: ANN001, ANN202 - torch convention
            return self.occlusion(self.body(x))

    return BackboneOcclusionNet()


def _learning_rates(config: TrainConfig) -> tuple[float, float]:
    """Peak learning rates (pre-training, fine-tuning): a trained ResNet moves gently, the small CNN from
    scratch needs more."""
    return (3e-4, 3e-4) if config.backbone else (3e-3, 1e-3)


def _tensor(faces: np.ndarray, device: "torch.device | None" = None) -> "torch.Tensor":
    import torch

    x = torch.from_numpy(np.ascontiguousarray(faces, dtype=np.float32) / 255.0)[:, None].to(device)
    return (x - 0.5) / 0.25


def _device_of(net: Any) -> "torch.device":
    return next(net.parameters()).device


def _jitter(faces: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flips and brightness/contrast changes (the occluder is already part of the image)."""
    out = faces.astype(np.float32)
    flip = rng.random(len(out)) < 0.5
    out[flip] = out[flip, :, ::-1]
    out = out * rng.uniform(0.8, 1.2, (len(out), 1, 1)) + rng.uniform(-20, 20, (len(out), 1, 1))
    return np.clip(out, 0, 255)


def _occlusion_loss(logits: "torch.Tensor", target: "torch.Tensor", type_known: "torch.Tensor") -> "torch.Tensor":
    """BCE on "occluded"; BCE on the type heads only for occluded faces with a known type."""
    import torch
    import torch.nn.functional as F

    weights = torch.ones_like(target)
    weights[:, 1:] = type_known[:, None] * target[:, :1]
    return (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weights).mean()


def train_scorer(
    pool: np.ndarray,
    expressions: np.ndarray | None,
    config: TrainConfig,
    labelled: tuple[np.ndarray, np.ndarray] | None = None,
    score_faces: np.ndarray | None = None,
    pretrained: dict[str, Any] | None = None,
    report: Callable[[str], None] | None = None,
) -> tuple["torch.nn.Module", dict[str, Any], np.ndarray | None, dict[str, Any]]:
    """Train the CNN and (optionally) score ``score_faces``.

    Returns (network, summary, scores or None, the pre-trained weights). Passing ``pretrained``
    (weights returned by an earlier call with the same pool and config) skips pre-training.

    Pre-training, ``config.steps`` batches from ``pool`` (N, 48, 48): synthetic occlusions drawn on
    the batch (occlusion head) plus, when ``expressions`` (N,) canonical label ids (-1 = none) are
    given, the expression of the clean faces (expression head). Fine-tuning, when ``labelled`` =
    (faces, targets (M, 6): occluded, then one-hot type or NaN when unknown) has at least
    ``config.min_labels`` faces per class: the occlusion head on real labels. The scores returned
    average the predictions after each of the last half of the fine-tuning epochs (a snapshot
    ensemble, steadier than the last epoch alone).

    ``report`` receives one line with the expected duration, measured on the first batches (one
    untimed warm-up batch, then :data:`TIMED_BATCHES` timed ones) and multiplied out; the same line
    is in the summary (``estimate_s``).
    """
    import torch
    import torch.nn.functional as F

    from fercurate.ran.predictor import pick_device

    dev = pick_device(config.device)
    torch.manual_seed(config.seed)
    torch.set_num_threads(max(1, config.threads))
    rng = np.random.default_rng(config.seed)
    net = build_net(config.backbone).to(dev)
    pre_lr, _ = _learning_rates(config)
    opt = torch.optim.AdamW(net.parameters(), lr=pre_lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=pre_lr, total_steps=max(1, config.steps))
    use_expr = expressions is not None and bool((expressions >= 0).any())
    candidates = np.flatnonzero(expressions >= 0) if use_expr else np.arange(len(pool))
    net.train()
    steps = 0 if pretrained is not None else config.steps
    if pretrained is not None:
        net.load_state_dict(pretrained)
    n_labelled = 0 if labelled is None else len(labelled[0])
    finetune_batches = config.finetune_epochs * -(-n_labelled // config.batch) if _will_finetune(labelled, config) else 0
    clock = _Estimate(steps, finetune_batches, str(dev), report)
    for step in progress(range(steps), total=steps, desc="pre-training (synthetic occlusion"
                         + (" + expression)" if use_expr else ")"), unit="batch"):
        clock.tick(step, "pre-training")
        idx = rng.choice(candidates, config.batch)
        images, targets = synthetic_set(pool[idx], config.batch, rng)
        loss = _occlusion_loss(net(_tensor(_jitter(images, rng), dev)), torch.from_numpy(targets).to(dev),
                               torch.ones(len(targets), device=dev))
        if use_expr:
            features = net.body(_tensor(_jitter(pool[idx], rng), dev))
            labels = torch.from_numpy(expressions[idx].astype(np.int64)).to(dev)
            loss = loss + F.cross_entropy(net.expression(features), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    clock.tick(steps, "pre-training")
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    summary: dict[str, Any] = {"pretrain_steps": config.steps, "pretrain_faces": int(len(candidates)),
                               "pretrain_reused": pretrained is not None, "expression": use_expr,
                               "finetuned": False, "label_pos": 0, "label_neg": 0, "device": str(dev)}
    scores = None
    if labelled is not None:
        faces, targets = labelled
        pos = int(np.nansum(targets[:, 0]))
        summary.update(label_pos=pos, label_neg=len(targets) - pos)
        if _will_finetune(labelled, config):
            # its own seeds, so fine-tuning gives the same result with reused or fresh pre-training
            torch.manual_seed(config.seed + 1)
            scores = _finetune(net, faces, targets, config, np.random.default_rng([config.seed, 1]), score_faces,
                               clock)
            summary["finetuned"] = True
    clock.report_if_pending()
    summary.update(estimate_s=clock.estimate_s, estimate=clock.line)
    net.eval()
    if scores is None and score_faces is not None:
        scores = predict(net, score_faces)
    return net, summary, scores, state


def _will_finetune(labelled: tuple[np.ndarray, np.ndarray] | None, config: TrainConfig) -> bool:
    """Fine-tuning runs when there are at least ``min_labels`` occluded and clean labelled faces."""
    if labelled is None or config.finetune_epochs <= 0:
        return False
    targets = labelled[1]
    pos = int(np.nansum(targets[:, 0]))
    return min(pos, len(targets) - pos) >= config.min_labels


class _Estimate:
    """Times the first batches of training and reports the expected total, once: the first (warm-up)
    batch as measured plus the time per batch of the next :data:`TIMED_BATCHES` times the rest.

    A fine-tuning batch costs about half a pre-training one (one forward pass instead of two, no
    occluders to draw); when pre-training is skipped (reused weights), fine-tuning batches are timed.
    """

    FINETUNE_SHARE = 0.5

    def __init__(self, steps: int, finetune_batches: int, device: str, report: Callable[[str], None] | None) -> None:
        self.steps, self.finetune_batches, self.device, self.report = steps, finetune_batches, device, report
        self.start: float | None = None
        self.first = 0.0
        self.phase = ""
        self.timed_from = 0
        self.estimate_s: float | None = None
        self.line: str | None = None

    def tick(self, done: int, phase: str) -> None:
        """Called before batch ``done`` (0-based) of ``phase`` and once after the phase's last batch."""
        if self.line is not None:
            return
        total = self.steps if phase == "pre-training" else self.finetune_batches
        if self.start is None or phase != self.phase:  # time from the second batch of a phase on
            now = time.perf_counter()
            if phase != self.phase or done == 0:
                self.first, self.phase, self.start = now, phase, None
            if done == 1 or (done == total == 1):
                self.start, self.timed_from = now, done
            return
        timed = done - self.timed_from
        if timed >= TIMED_BATCHES or (done == total and timed > 0):
            per = (time.perf_counter() - self.start) / timed
            pre = self.steps if phase == "pre-training" else 0
            fine = self.finetune_batches * (self.FINETUNE_SHARE if phase == "pre-training" else 1.0)
            warm_up = self.start - self.first  # the first batch (allocations, kernel choice) runs slower
            self._emit(warm_up + per * (pre + fine - 1), per, phase)

    def report_if_pending(self) -> None:
        """Too few batches to time (at most one per phase): say so rather than stay silent."""
        if self.line is None:
            self._emit(0.0, 0.0, "none")

    def _emit(self, seconds: float, per: float, phase: str) -> None:
        self.estimate_s = round(seconds, 1)
        if phase == "none":
            self.line = (f"expected training time: a few seconds ({self.steps:,} pre-training + "
                         f"{self.finetune_batches:,} fine-tuning batches, too few to time)")
        else:
            minutes, secs = divmod(int(round(seconds)), 60)
            self.line = (
                f"expected training time: ~{minutes} min {secs:02d} s on {self.device} "
                f"({self.steps:,} pre-training + {self.finetune_batches:,} fine-tuning batches; "
                f"{per:.2f} s per {phase} batch measured)"
            )
        if self.report is not None:
            self.report(self.line)


def _finetune(
    net: Any, faces: np.ndarray, targets: np.ndarray, config: TrainConfig, rng: np.random.Generator,
    score_faces: np.ndarray | None, clock: _Estimate | None = None,
) -> np.ndarray | None:
    import torch

    dev = _device_of(net)
    known = ~np.isnan(targets[:, 1:]).any(axis=1)
    clean_targets = np.nan_to_num(targets, nan=0.0).astype(np.float32)
    n = len(faces)
    per_epoch = (n + config.batch - 1) // config.batch
    _, lr = _learning_rates(config)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=config.finetune_epochs * per_epoch)
    bar = progress(total=config.finetune_epochs * per_epoch, desc="fine-tuning on labelled faces", unit="batch")
    snapshots = []
    done = 0
    for epoch in range(config.finetune_epochs):
        net.train()
        order = rng.permutation(n)
        for start in range(0, n, config.batch):
            if clock is not None:
                clock.tick(done, "fine-tuning")
            idx = order[start : start + config.batch]
            logits = net(_tensor(_jitter(faces[idx], rng), dev))
            loss = _occlusion_loss(logits, torch.from_numpy(clean_targets[idx]).to(dev),
                                   torch.from_numpy(known[idx].astype(np.float32)).to(dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            done += 1
        if score_faces is not None and epoch >= config.finetune_epochs // 2:
            net.eval()
            snapshots.append(predict(net, score_faces))
    if clock is not None:
        clock.tick(done, "fine-tuning")
    bar.close()
    return np.mean(snapshots, axis=0) if snapshots else None


def predict(net: Any, faces: np.ndarray, batch: int = 512) -> np.ndarray:
    """(N, 6) probabilities: occluded, then each type given occluded (averaged with the mirror image)."""
    import torch

    net.eval()
    dev = _device_of(net)
    out = []
    with torch.no_grad():
        for start in range(0, len(faces), batch):
            chunk = faces[start : start + batch]
            p = torch.sigmoid(net(_tensor(chunk, dev))) + torch.sigmoid(net(_tensor(chunk[:, :, ::-1].copy(), dev)))
            out.append((p / 2).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 1 + len(KINDS)), np.float32)


# --- labels --------------------------------------------------------------------------------------


def label_targets(labels: pd.DataFrame) -> pd.DataFrame:
    """Training targets from current labels (columns sample_id, types): occluded + one-hot type.

    ``none`` -> not occluded; a resolved type -> occluded with that type; ``glasses|mask`` /
    ``occluded`` -> occluded with the type unknown (NaN), so only the "occluded?" head learns from it.
    """
    rows = []
    for sid, types in zip(labels["sample_id"], labels["types"]):
        types = list(types)
        occluded = any(t != "none" for t in types)
        onehot = [np.nan] * len(KINDS)
        resolved = [t for t in types if t in KINDS]
        if occluded and resolved and len(resolved) == len([t for t in types if t != "none"]):
            onehot = [1.0 if k in resolved else 0.0 for k in KINDS]
        elif not occluded:
            onehot = [0.0] * len(KINDS)
        rows.append([sid, float(occluded), *onehot])
    return pd.DataFrame(rows, columns=["sample_id", "occluded", *KINDS])


def table_labels(events: pa.Table) -> pd.DataFrame:
    """Current human/official labels as training targets (suggestions excluded)."""
    labels = latest_labels(events, source=LABEL_SOURCES)
    return label_targets(labels[["sample_id", "types"]]) if len(labels) else label_targets(
        pd.DataFrame(columns=["sample_id", "types"])
    )


# --- entry point ---------------------------------------------------------------------------------


def suggest(
    manifest_path: str | os.PathLike,
    *,
    split: str | None = None,
    workspace: Workspace | None = None,
    config: TrainConfig | None = None,
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

    ``train_labels`` (output of :func:`label_targets`) replaces the labels read from the table;
    ``use_table_labels=False`` trains on synthetic occlusions only. With ``exclude_nonfaces``, rows
    flagged in the manifest's ``nonface`` layer (``fercurate quality nonface``) are neither trained
    on, scored nor pre-filled. ``report`` receives the expected training time before most of it runs.
    """
    from fercurate.ran.predictor import pick_device

    ws = workspace or Workspace.current()
    config = config or TrainConfig()
    if not (0 <= prefill_occluded <= 1 and 0 <= prefill_clean <= 1 and prefill_occluded + prefill_clean <= 1):
        raise InputError("prefill fractions must be in [0, 1] and add up to at most 1")
    backbone_id = _check_backbone(config.backbone)
    pick_device(config.device)  # a CUDA request without a GPU fails here, before any face is loaded
    full = read_manifest(ws.resolve_manifest(manifest_path))
    manifest = full.where_split(split) if split else full
    in_split = np.isin(full.table.column("split").cast(pa.string()).to_numpy(zero_copy_only=False), [split]) \
        if split else np.ones(len(full), bool)
    loaded_mask = in_split | _pool_extra(in_split, config)
    loaded = full.select(loaded_mask)
    faces, ok_all, failures_all = load_faces(loaded, workers=workers)
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
        train_labels = table_labels(events)
    labelled = None
    if train_labels is not None and len(train_labels):
        index = {sid: i for i, sid in enumerate(ids)}
        rows = [(index[s], k) for k, s in enumerate(train_labels["sample_id"]) if s in index and ok[index[s]]]
        if rows:
            pick = np.array([r[0] for r in rows])
            tgt = train_labels[["occluded", *KINDS]].to_numpy(np.float32)[[r[1] for r in rows]]
            labelled = (faces_scored[pick], tgt)
    cache = pretrained_path(full.path)
    key = _pretrain_key(config, loaded.table.column("sample_id").to_pylist(), ok_all, backbone_id)
    cached = _load_pretrained(cache, key)
    if report is not None and excluded.any():
        report(f"excluding {int(excluded.sum()):,} non-face(s) flagged by 'fercurate quality nonface' from ranking and pre-fill")
    _, training, scores, state = train_scorer(faces[ok_all], expressions[ok_all], config, labelled, faces_scored[ok],
                                              pretrained=cached, report=report)
    if cached is None:
        _save_pretrained(cache, key, state)
    training["pool_unreadable"] = len(failures_all) - len(failures)
    probs = np.full((len(ids), 1 + len(KINDS)), np.nan, np.float32)
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
    from fercurate.layers import read_layer
    from fercurate.workspace import layer_path

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


def _check_backbone(path: str | None) -> str:
    """SHA-256 of the backbone checkpoint ('' without one), after checking it is a fercurate checkpoint
    (a clear error before any face is loaded)."""
    if not path:
        return ""
    from fercurate.ran.checkpoint import file_sha256, load_checkpoint

    state = load_checkpoint(path)
    if state.get("arch") not in ("ran", "baseline"):
        raise InputError(f"{path}: --backbone needs a checkpoint of a RAN or baseline model (arch: {state.get('arch')})")
    return file_sha256(path)


def _pretrain_key(config: TrainConfig, sample_ids: Sequence[str], ok: np.ndarray, backbone_id: str = "") -> str:
    import hashlib

    h = hashlib.sha1()
    h.update(f"{config.method}|{backbone_id}|{config.seed}|{config.steps}|{config.pool}|{config.batch}|{config.threads}".encode())
    for sid, good in zip(sample_ids, ok):
        h.update(f"{sid}:{int(good)}\n".encode())
    return h.hexdigest()


def _load_pretrained(path: Path, key: str) -> dict[str, Any] | None:
    import torch

    if not path.exists():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a stale or broken cache is simply rebuilt
        return None
    return saved.get("state") if saved.get("key") == key else None


def _save_pretrained(path: Path, key: str, state: dict[str, Any]) -> None:
    import torch

    from fercurate.atomic import atomic_path

    with atomic_path(path, suffix=".pt.tmp") as tmp:
        torch.save({"key": key, "state": state}, tmp)


def _pool_extra(in_split: np.ndarray, config: TrainConfig) -> np.ndarray:
    """Rows outside the scored split added to the pre-training pool (seeded sample, up to ``config.pool``)."""
    extra = np.zeros(len(in_split), bool)
    others = np.flatnonzero(~in_split)
    room = max(0, config.pool - int(in_split.sum()))
    if room and len(others):
        pick = others if len(others) <= room else np.random.default_rng(config.seed).choice(others, room, replace=False)
        extra[pick] = True
    return extra


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
        picked = {KINDS[best]} | {KINDS[j] for j in np.flatnonzero(p >= 0.5)}
        out[i] = sorted(picked)
    for i in order[len(order) - n_bottom:] if n_bottom else []:
        out[i] = ["none"]
    return out


def _write_events(
    ws: Workspace, manifest: Manifest, ids: np.ndarray, suggested: list[list[str] | None], probs: np.ndarray,
    events: pa.Table, method: str = METHOD,
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
    "BACKBONE_METHOD",
    "METHOD",
    "SUGGEST_SCHEMA",
    "SuggestResult",
    "TrainConfig",
    "build_net",
    "label_targets",
    "load_faces",
    "nonface_reasons",
    "predict",
    "pretrained_path",
    "suggest",
    "table_labels",
    "train_scorer",
]
