"""The report's figures (matplotlib, Agg backend): label counts and pose histograms, saved as PNGs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fercurate.atomic import atomic_path  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def label_bars(counts: pd.DataFrame, title: str, path: Path) -> Path:
    """Grouped bars: one group per label, one bar per split (``counts``: label x split)."""
    labels = list(counts.index)
    splits = list(counts.columns)
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(splits))
    fig, ax = plt.subplots(figsize=(7, 2.8))
    for i, split in enumerate(splits):
        ax.bar(x + i * width - 0.4 + width / 2, counts[split].to_numpy(), width, label=split)
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("images")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def pose_histogram(yaw: np.ndarray, pitch: np.ndarray, title: str, path: Path) -> Path:
    """Yaw x pitch 2-D histogram with the Pose-30 / Pose-45 boxes drawn (members lie outside them)."""
    fig, ax = plt.subplots(figsize=(4.6, 4))
    lim = 90
    h = ax.hist2d(np.clip(yaw, -lim, lim), np.clip(pitch, -lim, lim), bins=36, range=[[-lim, lim], [-lim, lim]],
                  cmap="viridis", cmin=1)
    fig.colorbar(h[3], ax=ax, label="faces")
    for t, style in ((30, "--"), (45, ":")):
        ax.plot([-t, t, t, -t, -t], [-t, -t, t, t, -t], style, color="white", lw=1.2, label=f"|angle| = {t}°")
    ax.set_xlabel("yaw (°, + = toward image left)")
    ax.set_ylabel("pitch (°, + = chin up)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)
