"""The report's figures (matplotlib, Agg backend), saved as PNGs.

Label counts per split, pose histograms, full-size confusion matrices (counts and row-normalised
side by side), training curves and RAN's attention weights per crop.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fercurate.atomic import atomic_path  # noqa: E402


def _save(fig: plt.Figure, path: Path, dpi: int = 100) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def label_bars(counts: pd.DataFrame, title: str, path: Path) -> Path:
    """Grouped bars: one group per label, one bar per split (``counts``: label x split).

    The legend sits outside the axes (right), so it never hides a bar.
    """
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
    ax.legend(fontsize=8, title="split", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
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


def confusion_pair(cm: np.ndarray, labels: Sequence[str], title: str, path: Path) -> Path:
    """Counts (left) and row-normalised % (right), every cell labelled; rows = true class (with its n).

    Classes with no true faces keep their row, marked 'n = 0', and show '—' instead of a percentage.
    """
    cm = np.asarray(cm, dtype=np.int64)
    k = len(labels)
    support = cm.sum(1)
    norm = np.divide(cm, support[:, None], out=np.zeros(cm.shape, dtype=float), where=support[:, None] > 0)
    side = max(4.8, 0.62 * k + 1.6)
    fig, axes = plt.subplots(1, 2, figsize=(2 * side + 1.2, side), dpi=100)
    rows = [f"{lab} (n = {int(n):,})" for lab, n in zip(labels, support)]
    for ax, values, what in ((axes[0], cm, "counts"), (axes[1], norm, "row-normalised (% of the true class)")):
        shade = norm if what.startswith("row") else cm / max(1, cm.max())
        ax.imshow(shade, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(k), labels, rotation=45, ha="right", fontsize=9)
        ax.set_yticks(range(k), rows if ax is axes[0] else labels, fontsize=9)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(what, fontsize=10)
        for i in range(k):
            for j in range(k):
                if what == "counts":
                    text = f"{int(values[i, j]):,}"
                else:
                    text = f"{100 * values[i, j]:.1f}" if support[i] else "—"
                dark = shade[i, j] > 0.55
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "#1d232b")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path, dpi=110)


def _few(style: str, x: Sequence[float]) -> str:
    """A line style with markers when there are few points (a lone point of a plain line is invisible)."""
    return style if "o" in style or "s" in style or "^" in style or len(x) >= 30 else "." + style


def training_curves(records: Sequence[dict[str, Any]], title: str, path: Path) -> Path:
    """Loss, accuracy and learning rate against the optimiser step, from metrics.jsonl records.

    Per-step points (``event: train``) are drawn thin, per-epoch means (``event: epoch``) as markers.
    """
    steps = [r for r in records if r.get("event") == "train"]
    epochs = [r for r in records if r.get("event") == "epoch"]
    attention = [r for r in epochs if isinstance(r.get("val_mu_mean"), list) and "step" in r]
    fig, axes = plt.subplots(1, 4 if attention else 3, figsize=(17 if attention else 13, 3.4))

    def series(rows: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
        pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and "step" in r]
        return [p[0] for p in pts], [p[1] for p in pts]

    ax = axes[0]
    for rows, key, label, style in ((steps, "loss", "train loss (per logged step)", "-"),
                                    (steps, "rb", "region-biased loss (per logged step)", "-"),
                                    (epochs, "train_loss", "train loss (epoch mean)", "o-"),
                                    (epochs, "train_rb", "region-biased loss (epoch mean)", "s-")):
        x, y = series(rows, key)
        if x:
            ax.plot(x, y, _few(style, x), lw=1 if style == "-" else 1.6, ms=4, label=label)
    ax.set_title("loss", fontsize=10)
    ax = axes[1]
    for rows, key, label, style in ((steps, "acc", "train batch accuracy", "-"),
                                    (epochs, "train_acc", "train accuracy (epoch)", "o-"),
                                    (epochs, "val_acc", "validation accuracy", "s-"),
                                    (epochs, "val_mean_class_acc", "validation mean per-class", "^-")):
        x, y = series(rows, key)
        if x:
            ax.plot(x, [100 * v for v in y], _few(style, x), lw=1 if style == "-" else 1.6, ms=4, label=label)
    ax.set_ylim(0, 100)
    ax.set_title("accuracy (%)", fontsize=10)
    ax = axes[2]
    points = sorted(zip(*series([*steps, *epochs], "lr")))  # every record that has a step and its LR
    if points:
        x, y = [p[0] for p in points], [p[1] for p in points]
        ax.plot(x, y, _few("-", x), ms=4, label="learning rate (as logged)")
    ax.set_title("learning rate", fontsize=10)
    if attention:  # RAN's self-attention mu per crop on the validation faces: mean +- sd across faces
        ax = axes[3]
        x = [r["step"] for r in attention]
        mean = np.asarray([r["val_mu_mean"] for r in attention], dtype=float)
        sd = np.asarray([r.get("val_mu_sd") or [0.0] * mean.shape[1] for r in attention], dtype=float)
        for j in range(mean.shape[1]):
            line, = ax.plot(x, mean[:, j], _few("o-", x), ms=4, lw=1.4, label="whole face" if j == 0 else f"crop {j}")
            ax.fill_between(x, mean[:, j] - sd[:, j], mean[:, j] + sd[:, j], color=line.get_color(), alpha=0.12)
        ax.set_title("attention mu per crop (validation, mean ± sd)", fontsize=10)
    for ax in axes:
        ax.set_xlabel("optimiser step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def attention_bars(mu: np.ndarray, nu: np.ndarray | None, title: str, path: Path) -> Path:
    """Median (and 10th-90th percentile) of RAN's attention weights per crop (crop 0 = the whole face)."""
    crops = np.arange(mu.shape[1])
    fig, ax = plt.subplots(figsize=(6.5, 3))
    width = 0.38 if nu is not None else 0.7
    for offset, values, label in ((-width / 2 if nu is not None else 0, mu, "self-attention μ"),
                                  (width / 2, nu, "relation-attention ν")):
        if values is None:
            continue
        lo, mid, hi = np.percentile(values, [10, 50, 90], axis=0)
        ax.bar(crops + offset, mid, width, yerr=[mid - lo, hi - mid], capsize=3, label=label)
    ax.set_xticks(crops, ["face" if c == 0 else f"crop {c}" for c in crops], fontsize=8)
    ax.set_ylabel("weight (median, 10th-90th pct.)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(fig, path)
