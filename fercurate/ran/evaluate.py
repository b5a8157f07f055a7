"""Scoring a model on a manifest's split and subsets: ``fercurate eval``.

For every group (a split, and each subset within it) the report gives accuracy with a bootstrap 95%
confidence interval, mean per-class accuracy, a per-class table and the confusion matrix (JSON and PNG).
Where a group is a paper's test condition (the whole test split, or an official RAN list such as
``pose45``), the scored model's row is placed among the published results on that condition with the
same class count (:mod:`fercurate.published`), each citing its table; fercurate's own estimated subsets
(``pose45-estimated``) are never shown beside a paper figure. RAN's attention weights per crop are saved
for every face and can be drawn on sample faces.

Models and their contracts (label order, input size, channels, normalisation) are loaded by
:mod:`fercurate.ran.predictor`; the scores are computed by :mod:`fercurate.ran.metrics`. Each
evaluation writes its own report folder and refuses to overwrite one without ``overwrite=True``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
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
from fercurate.manifest import Manifest, read_manifest
from fercurate.provenance import environment, now_utc
from fercurate.ran import data as rdata
from fercurate.ran.checkpoint import file_sha256
from fercurate.ran.metrics import accuracy_summary, bootstrap_ci, confusion_matrix
from fercurate.ran.predictor import Predictor, describe, load_predictor, pick_device, run_model
from fercurate.subsets import SubsetInfo, paper_condition, paper_name
from fercurate.workspace import Workspace

__all__ = [
    "EvalResult", "Predictor", "accuracy_summary", "bootstrap_ci", "confusion_matrix", "evaluate", "load_predictor",
    "pick_device", "predict_proba", "report_folder", "run_model",
]


# --- the evaluation command ----------------------------------------------------------------------------


@dataclass
class EvalResult:
    report_dir: Path | None
    groups: list[dict[str, Any]]
    excluded: list[dict[str, str]]
    table: str
    probs_path: Path | None = None


def _resolve_inputs(
    predictor: Predictor, manifest: str | None, subsets: list[str], ws: Workspace
) -> tuple[Manifest, list[tuple[str, SubsetInfo, set[str]]]]:
    """The manifest to read and each subset (name asked for, what it resolved to, its ids).

    Every subset must belong to that manifest. Paper names (``pose45``) resolve to the official list
    where one is imported (see :func:`fercurate.subsets.find_subset`).
    """
    from fercurate.subsets import find_subset, subset_ids

    infos = []
    if manifest is not None:
        mpath = ws.resolve_manifest(manifest)
        m = read_manifest(mpath)
        for s in subsets:
            if s.endswith(".parquet"):
                info = find_subset(s, workspace=ws)
            else:
                try:
                    info = find_subset(s, manifest=m.name, workspace=ws)
                except InputError as exc:
                    others = [i for i in _all_subsets(ws) if i.name == s]
                    if others:
                        raise InputError(
                            f"subset {s!r} is not a subset of manifest {m.name!r} ({mpath}); it exists for "
                            f"{', '.join(sorted({o.manifest for o in others}))}"
                        ) from exc
                    raise
            if info.manifest != m.name:
                raise InputError(f"subset {info.name!r} ({info.path}) belongs to manifest {info.manifest!r}, not {m.name!r} ({mpath})")
            infos.append(info)
    elif subsets:
        infos = [find_subset(s, workspace=ws) for s in subsets]
        names = {i.manifest for i in infos}
        if len(names) > 1:
            raise InputError(f"the subsets belong to different manifests ({', '.join(sorted(names))}): pass --manifest")
        info = infos[0]
        mpath = info.manifest_path if info.manifest_path and info.manifest_path.exists() else ws.manifest_path(info.manifest)
        if not mpath.exists():
            raise InputError(f"subset {info.name!r}: its manifest {info.manifest!r} was not found ({mpath}); pass --manifest")
        m = read_manifest(mpath)
    elif predictor.manifest_path is not None and predictor.manifest_path.exists():
        m = read_manifest(predictor.manifest_path)
    else:
        raise InputError("nothing to evaluate on: pass --manifest (and --split / --subset)")
    asked = [s if not s.endswith(".parquet") else i.name for s, i in zip(subsets, infos)]
    return m, [(a, i, subset_ids(i)) for a, i in zip(asked, infos)]


def _all_subsets(ws: Workspace):  # noqa: ANN202
    from fercurate.subsets import list_subsets

    return list_subsets(ws)


def report_folder(model_path: str | os.PathLike, groups: list[str]) -> Path:
    """The default report folder: ``<model folder>/eval/<model name>-<groups>`` (e.g. ``eval/ran-pose45``).

    Named by model and groups so that two models in one folder, or two subsets, never share a report.
    """
    model = Path(model_path)
    name = "+".join(_slug(g) for g in groups) or datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return model.resolve().parent / "eval" / f"{_slug(model.stem)}-{name}"[:120]


REPORT_FILES = ("metrics.json", "report.txt", "leaderboard.txt", "excluded.parquet", "predictions.parquet",
                "attention.png")


def _claim_report_dir(out: Path, overwrite: bool) -> None:
    """Refuse to overwrite a previous report unless asked; with ``overwrite`` clear its files first."""
    if not (out / "metrics.json").exists():
        return
    if not overwrite:
        raise InputError(f"{out}: a report is already there (metrics.json); pass --overwrite to replace it, "
                         f"or --report DIR to write elsewhere")
    for f in [*(out / n for n in REPORT_FILES), *out.glob("confusion_*.png"), *out.glob("confusion_*.json")]:
        f.unlink(missing_ok=True)


def evaluate(
    model_path: str | os.PathLike,
    *,
    workspace: Workspace | str | os.PathLike | None = None,
    manifest: str | None = None,
    splits: list[str] | None = None,
    subsets: list[str] | None = None,
    report_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    device: str = "auto",
    batch_size: int = 128,
    input_size: int | None = None,
    labels: str | list[str] | None = None,
    input_norm: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    save_probs: str | os.PathLike | None = None,
    draw_attention: int = 0,
    workers: int | None = None,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    strict: bool = False,
    echo=print,  # noqa: ANN001
) -> EvalResult:
    """Evaluate a model on a manifest's split(s) and subsets and write the report (see module doc).

    ``workspace`` is the folder holding manifests/ and runs/ (a :class:`Workspace`, a path, or None for
    the current one). ``labels`` gives a TorchScript/ONNX model's output order (see
    :func:`fercurate.labels.parse_labels`).
    """
    started, t0 = now_utc(), time.perf_counter()
    ws = workspace if isinstance(workspace, Workspace) else Workspace.current(workspace)
    predictor = load_predictor(model_path, device=device, input_size=input_size, labels=labels, input_norm=input_norm)
    subsets = list(subsets or [])
    m, subset_members = _resolve_inputs(predictor, manifest, subsets, ws)
    splits = list(dict.fromkeys(splits or []))
    if not splits and not subsets:
        present = set(m.table.column("split").cast(pa.string()).to_pylist())
        splits = ["test"] if "test" in present else []
    out_dir = Path(report_dir) if report_dir else None
    if out_dir is not None:
        _claim_report_dir(out_dir, overwrite)
    k = len(predictor.labels)
    union = set().union(*(ids for _, _, ids in subset_members)) if subset_members and not splits else None
    samples = rdata.select_samples(m, splits=splits, ids=union, num_classes=k, require_labels=False)
    notes: list[str] = [describe(predictor)]
    cfg = predictor.config
    face_size = cfg.face_size if cfg is not None else predictor.input_size
    store = None
    if not cache and predictor.crops == "landmark" and predictor.align != "bbox":
        raise InputError(f"{predictor.path}: landmark crops of {predictor.align}-aligned faces need the face cache "
                         "(it keeps each face's alignment; drop --no-cache)")
    if cache:
        store = rdata.load_faces(samples, face_size, cache_dir=cache_dir or ws.root / "cache" / "faces", workers=workers,
                                 desc="decode faces", align=predictor.align)
        samples, store = rdata.drop_failures(samples, store)
    else:
        samples = rdata.drop_missing_files(samples)
    excluded = list(samples.excluded)
    failed = [e for e in excluded if e["kind"] == "unreadable"]
    if strict and failed:
        raise InputError(f"{len(failed)} images could not be read (first: {failed[0]['sample_id']}: {failed[0]['reason']})")
    if len(samples) == 0:
        raise InputError(f"{m.path}: no readable rows to evaluate ({excluded[0]['reason'] if excluded else 'empty selection'})")
    lms = None
    if predictor.crops == "landmark":
        lms = rdata.landmark_fractions(samples, store)
    res = run_model(predictor, samples, store, cfg, device=predictor.device, landmarks=lms, batch_size=batch_size,
                    desc="eval")
    probs = res["probs"]
    scored_ids = np.asarray([CANONICAL_LABELS.index(c) for c in predictor.labels])
    preds = scored_ids[probs.argmax(1)]
    ids = samples.sample_ids
    excluded_ids = np.asarray(sorted({e["sample_id"] for e in excluded}), dtype=object)
    all_ids = np.asarray(m.table.column("sample_id").to_pylist(), dtype=object)
    all_splits = np.asarray(m.table.column("split").cast(pa.string()).to_pylist(), dtype=object)
    split_of = dict(zip(all_ids.tolist(), all_splits.tolist()))
    sample_split = np.asarray([split_of[i] for i in ids.tolist()], dtype=object)
    excluded_split = np.asarray([split_of.get(i) for i in excluded_ids.tolist()], dtype=object)
    groups: list[dict[str, Any]] = []
    for split in splits:
        groups.append({"group": split, "kind": "split", "mask": sample_split == split,
                       "excluded": int((excluded_split == split).sum()), "condition": split,
                       "list": f"split {split} (all rows)"})
    in_split = set(ids.tolist())
    for name, info, members in subset_members:
        cond = paper_condition(info)
        scored_list = f"{info.name}: {info.rule} [{info.size} rows]"
        if cond is None and published.leaderboard(m.dataset, paper_name(info.name).replace("-or-", "|")):
            notes.append(f"{name}: fercurate's own subset ({info.rule}); the papers' figures are for the official "
                         f"list, not shown beside it")
        groups.append({"group": name, "kind": "subset", "mask": np.isin(ids, np.asarray(sorted(members), dtype=object)),
                       "excluded": int(np.isin(excluded_ids, np.asarray(sorted(members), dtype=object)).sum()),
                       "condition": cond, "list": scored_list})
        if splits:
            outside = len(members - in_split - set(excluded_ids.tolist()))
            if outside:
                notes.append(f"{name}: {outside} of its {len(members)} samples are not in split "
                             f"{', '.join(splits)} and were not scored")
    results = []
    for g in groups:
        mask = g["mask"]
        summ = accuracy_summary(samples.labels[mask], preds[mask], len(CANONICAL_LABELS), n_boot=n_boot, seed=seed)
        summ["per_class"] = [c for c in summ["per_class"] if c["class"] in predictor.labels]
        summ["confusion"] = np.asarray(summ["confusion"])[np.ix_(scored_ids, scored_ids)].tolist()
        rows = published.leaderboard(m.dataset, g["condition"], k) if g["condition"] else []
        size = published.subset_size(m.dataset, g["condition"]) if g["kind"] == "subset" and g["condition"] else None
        summ.update({
            "group": g["group"],
            "list": g["list"],
            "condition": g["condition"],
            "unlabelled": int(((samples.labels < 0) & mask).sum()),
            # rows of this group that could not be scored (unreadable image, label outside the model's classes)
            "excluded": g["excluded"],
            "published": [r.as_dict() for r in rows],
            "published_size": None if size is None else {"size": size[0], "source": size[1]},
        })
        results.append(summ)
    table = format_table(results, predictor, m) + "\n\n" + format_per_class(results, predictor.labels)
    boards = format_leaderboards(results, predictor, m)
    probs_path = None
    if out_dir is not None:
        run = {"started_at": started, "seconds": round(time.perf_counter() - t0, 2),
               "manifest_sha256": file_sha256(m.path), "environment": environment(predictor.device)}
        _write_report(out_dir, results, samples, probs, preds, res, predictor, m, excluded, notes, table, boards, run,
                      draw_attention, store, lms)
    if save_probs:
        probs_path = write_probs(probs_frame(ids, probs), save_probs, predictor, m)
    echo(table)
    if boards:
        echo("\n" + boards)
    for note in notes:
        echo(f"note: {note}")
    if excluded:
        # unreadable images: "<path>: why" -> count by why
        reasons = pd.Series([e["reason"].rsplit(": ", 1)[-1] if e["kind"] == "unreadable" else e["reason"]
                             for e in excluded]).value_counts()
        echo(f"excluded {len(excluded):,} rows: " + "; ".join(f"{r} ({c:,})" for r, c in reasons.items())
             + (f" -> {out_dir / 'excluded.parquet'}" if out_dir else ""))
    if out_dir is not None:
        echo(f"report: {out_dir}")
    return EvalResult(out_dir, results, excluded, table, probs_path)


def format_table(results: list[dict[str, Any]], predictor: Predictor, m: Manifest) -> str:
    """One text table: every group with our figures and the list that was scored."""
    arch = predictor.config.arch if predictor.config is not None else predictor.kind
    head = f"{predictor.path.name} ({arch}, {len(predictor.labels)} classes) on {m.name}"
    cols = f"{'group':<28} {'n':>6} {'acc %':>7} {'95% CI':>15} {'mean-cls %':>10} {'excl.':>6}  scored list"
    lines = [head, cols, "-" * len(cols)]
    for r in results:
        ci = r.get("ci95", {}).get("accuracy")
        ci_s = f"{100 * ci[0]:.2f}-{100 * ci[1]:.2f}" if ci and np.isfinite(ci[0]) else "-"
        lines.append(f"{r['group']:<28} {r['n']:>6} {100 * r['accuracy']:>7.2f} {ci_s:>15} "
                     f"{100 * r['mean_class_accuracy']:>10.2f} {r['excluded'] + r['unlabelled']:>6}  {r['list']}")
    return "\n".join(lines)


def format_leaderboards(results: list[dict[str, Any]], predictor: Predictor, m: Manifest) -> str:
    """For each group on a paper's condition: our row placed among the published rows (same classes)."""
    blocks = []
    k = len(predictor.labels)
    for r in results:
        if not r["condition"]:
            continue
        rows = published.leaderboard(m.dataset, r["condition"], k)
        others = published.leaderboard(m.dataset, r["condition"])
        if not others:
            continue
        size = r.get("published_size")
        size_s = f"; published size {size['size']} ({size['source']}), scored here {r['n']}" if size else ""
        title = (f"{r['group']} on {m.dataset} ({k} classes), published results{size_s}"
                 + ("" if rows else f" — none with {k} classes; other class counts are not comparable"))
        blocks.append(published.format_leaderboard(rows, (predictor.path.name, 100 * r["accuracy"], r["n"]), title=title))
    return "\n\n".join(blocks)


def format_per_class(results: list[dict[str, Any]], labels: list[str]) -> str:
    """Per-class accuracy (%) with the number of faces, one column per group."""
    widths = [max(14, len(r["group"]) + 1) for r in results]
    lines = ["per-class accuracy % (n)".ljust(26) + "".join(f"{r['group']:>{w}}" for r, w in zip(results, widths))]
    for j, name in enumerate(labels):
        cells = []
        for r, w in zip(results, widths):
            c = r["per_class"][j]
            acc = "-" if c["accuracy"] is None else f"{100 * c['accuracy']:.1f}"
            cells.append(f"{acc} ({c['n']})".rjust(w))
        lines.append(f"{name:<26}" + "".join(cells))
    return "\n".join(lines)


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


def predict_proba(
    model_path: str | os.PathLike,
    manifest_path: str | os.PathLike,
    split: str | None = None,
    *,
    device: str = "auto",
    batch_size: int = 128,
    workers: int | None = None,
    labels: str | list[str] | None = None,
    workspace: Workspace | str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Class probabilities for every readable row of a manifest (or one split).

    Returns DataFrame(sample_id, prob_0 .. prob_{K-1}) with column j = canonical class j (K = 8, or 7 for
    7-class models). Rows whose image cannot be read are left out and listed in ``df.attrs['excluded']``.
    """
    predictor = load_predictor(model_path, device=device, labels=labels)
    ws = workspace if isinstance(workspace, Workspace) else Workspace.current(workspace)
    m = read_manifest(ws.resolve_manifest(str(manifest_path)))
    samples = rdata.select_samples(m, splits=[split] if split else [], num_classes=len(predictor.labels), require_labels=False)
    cfg = predictor.config
    face_size = cfg.face_size if cfg is not None else predictor.input_size
    store = rdata.load_faces(samples, face_size, cache_dir=ws.root / "cache" / "faces", workers=workers, desc="decode faces",
                             align=predictor.align)
    samples, store = rdata.drop_failures(samples, store)
    lms = rdata.landmark_fractions(samples, store) if predictor.crops == "landmark" else None
    res = run_model(predictor, samples, store, cfg, device=predictor.device, landmarks=lms, batch_size=batch_size,
                    desc="predict")
    df = probs_frame(samples.sample_ids, res["probs"])
    df.attrs["excluded"] = list(samples.excluded)
    df.attrs["labels"] = list(predictor.labels)
    return df


# --- report files --------------------------------------------------------------------------------------


def _write_report(out: Path, results, samples, probs, preds, res, predictor, m, excluded, notes, table, boards, run, draw_n, store, lms) -> None:  # noqa: ANN001, PLR0913
    out.mkdir(parents=True, exist_ok=True)
    summary = {**run,
        "model": str(predictor.path), "model_kind": predictor.kind, "labels": predictor.labels,
        "model_label_order": predictor.model_labels, "contract_sources": predictor.contract.sources,
        "manifest": str(m.path), "dataset": m.dataset, "groups": results, "notes": notes,
        "excluded": len(excluded),
    }
    write_text(out / "metrics.json", json.dumps(summary, indent=2, default=_json_default))
    write_text(out / "report.txt", table + "\n" + (f"\n{boards}\n\n" if boards else "") + "".join(f"note: {n}\n" for n in notes))
    if boards:
        write_text(out / "leaderboard.txt", boards + "\n")
    for r in results:
        slug = _slug(r["group"])
        write_text(out / f"confusion_{slug}.json", json.dumps({"labels": predictor.labels, "rows": "true", "columns": "predicted",
                                                              "counts": r["confusion"]}, indent=1))
        plot_confusion(np.asarray(r["confusion"]), predictor.labels, f"{r['group']}: acc {100 * r['accuracy']:.2f}% (n={r['n']})",
                       out / f"confusion_{slug}.png")
    ex = pa.Table.from_pylist([{"sample_id": e["sample_id"], "kind": e["kind"], "reason": e["reason"]} for e in excluded],
                              schema=pa.schema([("sample_id", pa.string()), ("kind", pa.string()), ("reason", pa.string())]))
    with atomic_path(out / "excluded.parquet", suffix=".parquet.tmp") as tmp:
        pq.write_table(ex, tmp)
    cols: dict[str, Any] = {"sample_id": samples.sample_ids.tolist(), "label": samples.labels, "pred": preds,
                            "confidence": probs.max(1)}
    if res["mu"] is not None:
        for j in range(res["mu"].shape[1]):
            cols[f"mu_{j}"] = res["mu"][:, j]
            cols[f"nu_{j}"] = res["nu"][:, j]
    with atomic_path(out / "predictions.parquet", suffix=".parquet.tmp") as tmp:
        pq.write_table(pa.table(cols), tmp)
    if draw_n and res["mu"] is not None and store is not None:
        draw_attention(samples, store, res, predictor, out / "attention.png", draw_n, lms)


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


def draw_attention(samples, store, res, predictor, path: Path, n: int, lms) -> Path:  # noqa: ANN001
    """A grid of ``n`` faces with each crop outlined, line width and label by its weight mu_i * nu_i."""
    import cv2

    from fercurate.images import write_image_atomic
    from fercurate.ran.crops import landmark_boxes, landmark_centres
    from fercurate.ran.crops import eval_boxes, fixed_crop_boxes

    cfg = predictor.config
    idx = np.linspace(0, len(samples) - 1, num=min(n, len(samples))).astype(int)
    tile = 192
    colours = [(255, 255, 255), (0, 0, 255), (0, 200, 0), (255, 0, 0), (0, 200, 255), (255, 0, 255), (255, 255, 0)]
    tiles = []
    for i in idx:
        face = np.ascontiguousarray(store.faces[i].transpose(1, 2, 0)[:, :, ::-1])
        face = cv2.resize(face, (tile, tile), interpolation=cv2.INTER_LINEAR)
        if cfg.crops == "random":
            boxes = eval_boxes(cfg).numpy()
        elif cfg.crops == "landmark":
            boxes = landmark_boxes(torch.as_tensor(landmark_centres(lms[i : i + 1])), cfg.landmark_scale)[0].numpy()
        else:
            boxes = fixed_crop_boxes(cfg).numpy()
        w = res["mu"][i] * res["nu"][i]
        w = w / w.sum()
        for j in np.argsort(w):
            x0, y0, x1, y1 = (np.clip(boxes[j], 0, 1) * (tile - 1)).astype(int)
            thick = 1 + int(round(6 * w[j] / w.max()))
            cv2.rectangle(face, (x0, y0), (x1, y1), colours[j % len(colours)], thick)
            cv2.putText(face, f"{j}:{w[j]:.2f}", (4, 14 + 14 * j), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colours[j % len(colours)], 1)
        pred = predictor.labels[int(res["probs"][i].argmax())]
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
