"""``fercurate eval``'s text tables and report files, written from the evaluation's groups.

The console and ``report.txt`` get one table of every group (:func:`format_table`), a per-class table
(:func:`format_per_class`) and, for each group on a paper's condition, the model's row among the
published results (:func:`format_leaderboards`). A report folder holds ``metrics.json``, those texts,
a confusion matrix per group (JSON and PNG), ``predictions.parquet`` (with RAN's attention weights per
crop), ``excluded.parquet`` and, when asked, ``attention.png``; an existing report is replaced only
when asked (:func:`claim_report_dir`).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from fercurate import published
from fercurate.atomic import atomic_path, write_text
from fercurate.errors import InputError
from fercurate.labels import CANONICAL_LABELS
from fercurate.manifest import Manifest
from fercurate.ran.config import EvalConfig
from fercurate.ran.predictor import Predictor
from fercurate.ran.scoring import Group, LabelRule, Scored
from fercurate.workspace import Workspace

REPORT_FILES = ("metrics.json", "report.txt", "leaderboard.txt", "excluded.parquet", "predictions.parquet",
                "attention.png")


def report_folder(model_path: str | os.PathLike, groups: list[str], workspace: Workspace | None = None) -> Path:
    """The default report folder, always inside the workspace (where ``fercurate report`` looks):
    ``<model folder>/eval/<model name>-<groups>`` for a model under ``runs/``, else
    ``<workspace>/eval/<model name>-<groups>`` (e.g. ``eval/fer2013-test``), wherever the model file lives.

    Named by model and groups so that two models in one folder, or two subsets, never share a report.
    """
    model = Path(model_path).resolve()
    ws = workspace or Workspace.current()
    name = "+".join(_slug(g) for g in groups) or datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder = f"{_slug(model.stem)}-{name}"[:120]
    if model.is_relative_to(ws.runs.resolve()):
        return model.parent / "eval" / folder
    return ws.root / "eval" / folder


def claim_report_dir(out: Path, overwrite: bool) -> None:
    """Refuse to overwrite a previous report unless asked; with ``overwrite`` clear its files first."""
    if not (out / "metrics.json").exists():
        return
    if not overwrite:
        raise InputError(f"{out}: a report is already there (metrics.json); pass --overwrite to replace it, "
                         f"or --report DIR to write elsewhere")
    for f in [*(out / n for n in REPORT_FILES), *out.glob("confusion_*.png"), *out.glob("confusion_*.json")]:
        f.unlink(missing_ok=True)


# --- text tables ---------------------------------------------------------------------------------------


def format_table(groups: list[Group], predictor: Predictor, m: Manifest, rule: LabelRule | None = None) -> str:
    """One text table: every group with our figures, the label rule beside each accuracy, what was left out
    (not scored: excluded.parquet; scored without a label) and the list that was scored."""
    arch = predictor.config.arch if predictor.config is not None else predictor.kind
    head = f"{predictor.path.name} ({arch}, {len(predictor.labels)} classes) on {m.name}"
    if rule is not None:
        head += f"; label rule {rule.short()}" + ("" if rule.name is None else f" ({rule.source.split(':')[0]})")
    cols = (f"{'group':<28} {'n':>6} {'acc %':>7} {'95% CI':>15} {'mean-cls %':>10} {'rule':>11} {'not scored':>10} "
            f"{'no label':>8}  scored list")
    lines = [head, cols, "-" * len(cols)]
    for g in groups:
        r = g.scores
        ci = r.get("ci95", {}).get("accuracy")
        ci_s = f"{100 * ci[0]:.2f}-{100 * ci[1]:.2f}" if ci and np.isfinite(ci[0]) else "-"
        lines.append(f"{g.name:<28} {r['n']:>6} {100 * r['accuracy']:>7.2f} {ci_s:>15} "
                     f"{100 * r['mean_class_accuracy']:>10.2f} {rule.short() if rule else '-':>11} {g.excluded:>10} "
                     f"{g.unlabelled:>8}  {g.scored_list}")
    return "\n".join(lines)


def format_leaderboards(groups: list[Group], predictor: Predictor, m: Manifest) -> str:
    """For each group on a paper's condition: our row placed among the published rows (same classes)."""
    blocks = []
    k = len(predictor.labels)
    for g in groups:
        if not (g.published or g.published_other):
            continue
        size = g.published_size
        size_s = f"; published size {size[0]} ({size[1]}), scored here {g.scores['n']}" if size else ""
        title = (f"{g.name} on {m.dataset} ({k} classes), published results{size_s}"
                 + ("" if g.published else f" — none with {k} classes; other class counts are not comparable"))
        ours = (predictor.path.name, 100 * g.scores["accuracy"], g.scores["n"])
        blocks.append(published.format_leaderboard(list(g.published), ours, title=title))
    return "\n\n".join(blocks)


def format_per_class(groups: list[Group], labels: list[str]) -> str:
    """Per-class accuracy (%) with the number of faces, one column per group."""
    widths = [max(14, len(g.name) + 1) for g in groups]
    lines = ["per-class accuracy % (n)".ljust(26) + "".join(f"{g.name:>{w}}" for g, w in zip(groups, widths))]
    for j, name in enumerate(labels):
        cells = []
        for g, w in zip(groups, widths):
            c = g.scores["per_class"][j]
            acc = "-" if c["accuracy"] is None else f"{100 * c['accuracy']:.1f}"
            cells.append(f"{acc} ({c['n']})".rjust(w))
        lines.append(f"{name:<26}" + "".join(cells))
    return "\n".join(lines)


def format_results(groups: list[Group], predictor: Predictor, m: Manifest,
                   rule: LabelRule | None = None) -> tuple[str, str]:
    """The console's two texts: the groups' table with the per-class table under it, and the leaderboards."""
    table = format_table(groups, predictor, m, rule) + "\n\n" + format_per_class(groups, predictor.labels)
    return table, format_leaderboards(groups, predictor, m)


# --- probabilities -------------------------------------------------------------------------------------


def probs_frame(sample_ids: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    """DataFrame(sample_id, prob_0 .. prob_{K-1}); column j is canonical class j."""
    df = pd.DataFrame({"sample_id": pd.Series(sample_ids, dtype=object)})
    for j in range(probs.shape[1]):
        df[f"prob_{j}"] = probs[:, j].astype(np.float32)
    return df


def write_probs(df: pd.DataFrame, path: str | os.PathLike, predictor: Predictor, m: Manifest) -> Path:
    """Write probabilities atomically, with the label map and model in the Parquet metadata."""
    path = Path(path)
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = {"labels": predictor.labels, "model": str(predictor.path), "manifest": str(m.path)}
    table = table.replace_schema_metadata({b"fercurate.probs": json.dumps(meta).encode()})
    with atomic_path(path, suffix=".parquet.tmp") as tmp:
        pq.write_table(table, tmp)
    return path


# --- report files --------------------------------------------------------------------------------------


def write_report(groups: list[Group], config: EvalConfig, scored: Scored, notes: list[str], run: dict[str, Any],
                 rule: LabelRule | None = None) -> Path:
    """Write the report folder ``config.report_dir`` (see the module doc); ``run`` is when and on what it ran."""
    out = Path(config.report_dir)
    out.mkdir(parents=True, exist_ok=True)
    predictor, m, samples = scored.predictor, scored.manifest, scored.samples
    table, boards = format_results(groups, predictor, m, rule)
    summary = {**run,
        "model": str(predictor.path), "model_kind": predictor.kind, "labels": predictor.labels,
        "model_label_order": predictor.model_labels, "contract_sources": predictor.contract.sources,
        "contract": predictor.contract.as_dict(), "label_rule": None if rule is None else rule.as_dict(),
        "manifest": str(m.path), "dataset": m.dataset, "groups": [g.as_dict() for g in groups], "notes": notes,
        "excluded": len(samples.excluded),
    }
    write_text(out / "metrics.json", json.dumps(summary, indent=2, default=_json_default))
    write_text(out / "report.txt", table + "\n" + (f"\n{boards}\n\n" if boards else "") + "".join(f"note: {n}\n" for n in notes))
    if boards:
        write_text(out / "leaderboard.txt", boards + "\n")
    for g in groups:
        slug, cm = _slug(g.name), g.scores["confusion"]
        write_text(out / f"confusion_{slug}.json", json.dumps({"labels": predictor.labels, "rows": "true", "columns": "predicted",
                                                              "counts": cm}, indent=1))
        plot_confusion(np.asarray(cm), predictor.labels, f"{g.name}: acc {100 * g.scores['accuracy']:.2f}% (n={g.scores['n']})",
                       out / f"confusion_{slug}.png")
    ex = pa.Table.from_pylist([{"sample_id": e["sample_id"], "kind": e["kind"], "reason": e["reason"]} for e in samples.excluded],
                              schema=pa.schema([("sample_id", pa.string()), ("kind", pa.string()), ("reason", pa.string())]))
    with atomic_path(out / "excluded.parquet", suffix=".parquet.tmp") as tmp:
        pq.write_table(ex, tmp)
    cols: dict[str, Any] = {"sample_id": samples.sample_ids.tolist(), "label": samples.labels, "pred": scored.preds,
                            "confidence": scored.probs.max(1)}
    if scored.mu is not None:
        for j in range(scored.mu.shape[1]):
            cols[f"mu_{j}"] = scored.mu[:, j]
            cols[f"nu_{j}"] = scored.nu[:, j]
    with atomic_path(out / "predictions.parquet", suffix=".parquet.tmp") as tmp:
        pq.write_table(pa.table(cols), tmp)
    if config.draw_attention and scored.mu is not None and scored.store is not None:
        draw_attention(scored, out / "attention.png", config.draw_attention)
    return out


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    raise TypeError(type(o))


def plot_confusion(cm: np.ndarray, labels: list[str], title: str, path: Path) -> None:
    """Row-normalised confusion matrix with counts, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=110)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, f"{cm[i, j]}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    with atomic_path(path, suffix=".png.tmp") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def draw_attention(scored: Scored, path: Path, n: int) -> Path:
    """A grid of ``n`` faces with each crop outlined, line width and label by its weight mu_i * nu_i."""
    import cv2

    from fercurate.images import write_image_atomic
    from fercurate.ran.crops import eval_boxes, fixed_crop_boxes, landmark_boxes, landmark_centres

    samples, predictor, lms = scored.samples, scored.predictor, scored.landmarks
    cfg = predictor.config
    idx = np.linspace(0, len(samples) - 1, num=min(n, len(samples))).astype(int)
    tile = 192
    colours = [(255, 255, 255), (0, 0, 255), (0, 200, 0), (255, 0, 0), (0, 200, 255), (255, 0, 255), (255, 255, 0)]
    tiles = []
    for i in idx:
        face = np.ascontiguousarray(scored.store.faces[i].transpose(1, 2, 0)[:, :, ::-1])
        face = cv2.resize(face, (tile, tile), interpolation=cv2.INTER_LINEAR)
        if cfg.crops == "random":
            boxes = eval_boxes(cfg).numpy()
        elif cfg.crops == "landmark":
            boxes = landmark_boxes(torch.as_tensor(landmark_centres(lms[i : i + 1])), cfg.landmark_scale)[0].numpy()
        else:
            boxes = fixed_crop_boxes(cfg).numpy()
        w = scored.mu[i] * scored.nu[i]
        w = w / w.sum()
        for j in np.argsort(w):
            x0, y0, x1, y1 = (np.clip(boxes[j], 0, 1) * (tile - 1)).astype(int)
            thick = 1 + int(round(6 * w[j] / w.max()))
            cv2.rectangle(face, (x0, y0), (x1, y1), colours[j % len(colours)], thick)
            cv2.putText(face, f"{j}:{w[j]:.2f}", (4, 14 + 14 * j), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colours[j % len(colours)], 1)
        pred = predictor.labels[int(scored.probs[i].argmax())]
        true = CANONICAL_LABELS[samples.labels[i]] if samples.labels[i] >= 0 else "?"
        cv2.putText(face, f"{true}->{pred}", (4, tile - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 255), 1)
        tiles.append(face)
    cols = min(6, len(tiles))
    rows = -(-len(tiles) // cols)
    grid = np.zeros((rows * tile, cols * tile, 3), dtype=np.uint8)
    for t, img in enumerate(tiles):
        r, c = divmod(t, cols)
        grid[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = img
    write_image_atomic(path, grid)
    return path
