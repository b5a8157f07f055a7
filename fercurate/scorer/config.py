"""How the occlusion scorer is trained: :class:`ScorerConfig` (the defaults take minutes of CPU)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

METHOD = "cnn48-synthetic+expression"
BACKBONE_METHOD = "resnet18-checkpoint-synthetic+expression"
FAST_STEPS, FAST_POOL, FAST_EPOCHS = 200, 5_000, 4


@dataclass
class ScorerConfig:
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
    def fast(cls, **overrides: Any) -> "ScorerConfig":
        """The ``--fast`` preset: 200 pre-training batches (a quarter of the default) on at most 5,000
        faces, 4 fine-tuning epochs; about 4x quicker, with a rougher ranking. ``overrides`` win."""
        return cls(**{"steps": FAST_STEPS, "pool": FAST_POOL, "finetune_epochs": FAST_EPOCHS, **overrides})


__all__ = ["BACKBONE_METHOD", "FAST_EPOCHS", "FAST_POOL", "FAST_STEPS", "METHOD", "ScorerConfig"]
