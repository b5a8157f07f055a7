"""Training the scorer: pre-training on synthetic occlusions and expressions, fine-tuning on labels.

1. **pre-training** (no occlusion labels needed) on a pool of the manifest's faces, two tasks at
   once: spotting synthetic occluders painted on the faces (:mod:`fercurate.scorer.synthetic`;
   occluded? + which type) and recognising the manifest's own expression labels (which makes the
   network look at eyes, brows and mouth: the parts occluders hide).
2. **fine-tuning on occlusion labels people already gave**, when there are at least ``min_labels``
   per class. The scores returned average the predictions after each of the last half of the
   epochs (a snapshot ensemble, steadier than the last epoch alone).

Runs on CUDA when present (``ScorerConfig.device``), else on the CPU; the same inputs, seed and
thread count give the same scores on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fercurate.progress import progress
from fercurate.ran.predictor import pick_device
from fercurate.scorer.config import ScorerConfig
from fercurate.scorer.estimate import TrainingEstimate
from fercurate.scorer.model import build_net, device_of, face_tensor, predict
from fercurate.scorer.synthetic import synthetic_set


def device_for(config: ScorerConfig) -> torch.device:
    """The device the scorer trains on (``config.device``); asking for CUDA without a GPU is an InputError."""
    return pick_device(config.device)


def pool_extra(in_split: np.ndarray, config: ScorerConfig) -> np.ndarray:
    """Rows outside the scored split added to the pre-training pool (seeded sample, up to ``config.pool``)."""
    extra = np.zeros(len(in_split), bool)
    others = np.flatnonzero(~in_split)
    room = max(0, config.pool - int(in_split.sum()))
    if room and len(others):
        pick = others if len(others) <= room else np.random.default_rng(config.seed).choice(others, room, replace=False)
        extra[pick] = True
    return extra


def _learning_rates(config: ScorerConfig) -> tuple[float, float]:
    """Peak learning rates (pre-training, fine-tuning): a trained ResNet moves gently, the small CNN from
    scratch needs more."""
    return (3e-4, 3e-4) if config.backbone else (3e-3, 1e-3)


def _jitter(faces: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flips and brightness/contrast changes (the occluder is already part of the image)."""
    out = faces.astype(np.float32)
    flip = rng.random(len(out)) < 0.5
    out[flip] = out[flip, :, ::-1]
    out = out * rng.uniform(0.8, 1.2, (len(out), 1, 1)) + rng.uniform(-20, 20, (len(out), 1, 1))
    return np.clip(out, 0, 255)


def _occlusion_loss(logits: torch.Tensor, target: torch.Tensor, type_known: torch.Tensor) -> torch.Tensor:
    """BCE on "occluded"; BCE on the type heads only for occluded faces with a known type."""
    weights = torch.ones_like(target)
    weights[:, 1:] = type_known[:, None] * target[:, :1]
    return (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weights).mean()


def train_scorer(
    pool: np.ndarray,
    expressions: np.ndarray | None,
    config: ScorerConfig,
    labelled: tuple[np.ndarray, np.ndarray] | None = None,
    score_faces: np.ndarray | None = None,
    pretrained: dict[str, Any] | None = None,
    report: Callable[[str], None] | None = None,
) -> tuple[torch.nn.Module, dict[str, Any], np.ndarray | None, dict[str, Any]]:
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
    untimed warm-up batch, then :data:`~fercurate.scorer.estimate.TIMED_BATCHES` timed ones) and
    multiplied out; the same line is in the summary (``estimate_s``).
    """
    dev = device_for(config)
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
    finetune_batches = config.finetune_epochs * -(-n_labelled // config.batch) if will_finetune(labelled, config) else 0
    clock = TrainingEstimate(steps, finetune_batches, str(dev), report)
    for step in progress(range(steps), total=steps, desc="pre-training (synthetic occlusion"
                         + (" + expression)" if use_expr else ")"), unit="batch"):
        clock.tick(step, "pre-training")
        idx = rng.choice(candidates, config.batch)
        images, targets = synthetic_set(pool[idx], config.batch, rng)
        loss = _occlusion_loss(net(face_tensor(_jitter(images, rng), dev)), torch.from_numpy(targets).to(dev),
                               torch.ones(len(targets), device=dev))
        if use_expr:
            features = net.body(face_tensor(_jitter(pool[idx], rng), dev))
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
        if will_finetune(labelled, config):
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


def will_finetune(labelled: tuple[np.ndarray, np.ndarray] | None, config: ScorerConfig) -> bool:
    """Fine-tuning runs when there are at least ``min_labels`` occluded and clean labelled faces."""
    if labelled is None or config.finetune_epochs <= 0:
        return False
    targets = labelled[1]
    pos = int(np.nansum(targets[:, 0]))
    return min(pos, len(targets) - pos) >= config.min_labels


def _finetune(
    net: Any, faces: np.ndarray, targets: np.ndarray, config: ScorerConfig, rng: np.random.Generator,
    score_faces: np.ndarray | None, clock: TrainingEstimate | None = None,
) -> np.ndarray | None:
    dev = device_of(net)
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
            logits = net(face_tensor(_jitter(faces[idx], rng), dev))
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


__all__ = ["device_for", "pool_extra", "train_scorer", "will_finetune"]
