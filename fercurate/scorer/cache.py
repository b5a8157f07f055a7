"""Pre-trained scorer weights kept on disk, so that re-running on the same faces with the same settings
only fine-tunes (pre-training is most of the time, and the labels people add change only fine-tuning).

The file holds the weights and the key they were trained under (:func:`pretrain_key`: method,
backbone, seed, steps, pool, batch, threads and which faces were readable); another key, or a
broken file, means "pre-train again".
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fercurate.atomic import atomic_path
from fercurate.scorer.config import ScorerConfig


def pretrain_key(config: ScorerConfig, sample_ids: Sequence[str], ok: np.ndarray, backbone_id: str = "") -> str:
    """What the pre-trained weights depend on: the settings, the backbone's SHA-256 and the faces."""
    h = hashlib.sha1()
    h.update(f"{config.method}|{backbone_id}|{config.seed}|{config.steps}|{config.pool}|{config.batch}|{config.threads}".encode())
    for sid, good in zip(sample_ids, ok):
        h.update(f"{sid}:{int(good)}\n".encode())
    return h.hexdigest()


def load_pretrained(path: Path, key: str) -> dict[str, Any] | None:
    """The weights saved at ``path`` under ``key``; None when there are none (or other, or unreadable)."""
    if not path.exists():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a stale or broken cache is simply rebuilt
        return None
    return saved.get("state") if saved.get("key") == key else None


def save_pretrained(path: Path, key: str, state: dict[str, Any]) -> None:
    """Keep the weights ``state`` at ``path`` under ``key`` (atomically)."""
    with atomic_path(path, suffix=".pt.tmp") as tmp:
        torch.save({"key": key, "state": state}, tmp)


__all__ = ["load_pretrained", "pretrain_key", "save_pretrained"]
