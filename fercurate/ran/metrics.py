"""Scores of predictions: accuracy, mean per-class accuracy, per-class table, confusion matrix, bootstrap CIs.

Labels and predictions are canonical class ids (:data:`fercurate.labels.CANONICAL_LABELS`); rows with a
negative label are not scored.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fercurate.labels import CANONICAL_LABELS


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, k: int) -> np.ndarray:
    """(K, K) counts: rows = true class, columns = predicted class."""
    return np.bincount(labels * k + preds, minlength=k * k).reshape(k, k)


def bootstrap_ci(correct: np.ndarray, labels: np.ndarray, k: int, *, n_boot: int = 1000, seed: int = 0) -> dict[str, list[float]]:
    """Percentile 95% intervals of accuracy and mean per-class accuracy over ``n_boot`` resamples."""
    n = len(correct)
    if n == 0 or n_boot <= 0:
        return {"accuracy": [float("nan")] * 2, "mean_class_accuracy": [float("nan")] * 2}
    rng = np.random.default_rng(seed)
    acc = np.empty(n_boot)
    mca = np.empty(n_boot)
    step = max(1, 2_000_000 // n)
    for start in range(0, n_boot, step):
        stop = min(n_boot, start + step)
        idx = rng.integers(0, n, size=(stop - start, n))
        c = correct[idx]
        acc[start:stop] = c.mean(1)
        lab = labels[idx] + (np.arange(stop - start) * k)[:, None]
        tot = np.bincount(lab.ravel(), minlength=(stop - start) * k).reshape(-1, k)
        hit = np.bincount(lab.ravel(), weights=c.ravel(), minlength=(stop - start) * k).reshape(-1, k)
        with np.errstate(invalid="ignore", divide="ignore"):
            mca[start:stop] = np.nanmean(np.where(tot > 0, hit / np.maximum(tot, 1), np.nan), axis=1)
    return {"accuracy": [float(np.percentile(acc, 2.5)), float(np.percentile(acc, 97.5))],
            "mean_class_accuracy": [float(np.nanpercentile(mca, 2.5)), float(np.nanpercentile(mca, 97.5))]}


def accuracy_summary(labels: np.ndarray, preds: np.ndarray, k: int, *, n_boot: int = 0, seed: int = 0) -> dict[str, Any]:
    """Accuracy, mean per-class accuracy (over classes present), per-class table, confusion matrix, CI."""
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(preds, dtype=np.int64)
    valid = labels >= 0
    labels, preds = labels[valid], preds[valid]
    cm = confusion_matrix(labels, preds, k)
    support = cm.sum(1)
    correct_per = np.diag(cm)
    predicted = cm.sum(0)
    per_class = []
    for i in range(k):
        per_class.append({
            "class": CANONICAL_LABELS[i], "n": int(support[i]), "correct": int(correct_per[i]),
            "accuracy": float(correct_per[i] / support[i]) if support[i] else None,
            "precision": float(correct_per[i] / predicted[i]) if predicted[i] else None,
        })
    present = support > 0
    n = int(len(labels))
    correct = (labels == preds).astype(np.float64)
    out = {
        "n": n,
        "correct": int(correct.sum()),
        "accuracy": float(correct.mean()) if n else float("nan"),
        "mean_class_accuracy": float(np.mean(correct_per[present] / support[present])) if present.any() else float("nan"),
        "per_class": per_class,
        "confusion": cm.tolist(),
    }
    if n_boot:
        out["ci95"] = bootstrap_ci(correct, labels, k, n_boot=n_boot, seed=seed)
    return out
