"""Scoring a model on a manifest's split and subsets: ``fercurate eval``.

For every group (a split, and each subset within it) the report gives accuracy with a bootstrap 95%
confidence interval, mean per-class accuracy, a per-class table and the confusion matrix (JSON and PNG),
beside the RAN paper's Table II figures. RAN's attention weights per crop are saved for every face and
can be drawn on sample faces.

``--model`` may be:

* a fercurate checkpoint (``ran.pt`` / ``baseline.pt`` from ``fercurate train``);
* a TorchScript file, or
* an ONNX model (needs the optional ``onnxruntime`` package).

Input contract for TorchScript and ONNX models: one float32 tensor (B, 3, H, W), RGB, values in [0, 1]
(``input_norm="imagenet"`` feeds ImageNet mean/std-normalised values instead), H = W = ``input_size``
(TorchScript files exported by fercurate carry it; ONNX models with a fixed input shape give it;
otherwise 224). The face is the manifest's bounding box made square (the whole image when there is
none), resized to H x W. Output: (B, K) logits or probabilities, K = 8 classes in fercurate's canonical
order (neutral, happy, sad, surprise, fear, disgust, anger, contempt) or 7 (without contempt).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from fercurate.atomic import atomic_path, write_text
from fercurate.errors import InputError
from fercurate.manifest import Manifest, read_manifest
from fercurate.ran import data as rdata
from fercurate.ran.checkpoint import check_label_map, load_checkpoint, model_kind
from fercurate.ran.paper import paper_figures
from fercurate.schema import CANONICAL_LABELS
from fercurate.workspace import Workspace

INPUT_NORMS = ("unit", "imagenet")


# --- models -----------------------------------------------------------------------------------------


@dataclass
class Predictor:
    """A loaded model of any supported kind, scoring float faces in [0, 1]."""

    kind: str
    path: Path
    labels: list[str]
    input_size: int
    model: Any = None
    config: Any = None  # TrainConfig for fercurate checkpoints
    manifest_path: Path | None = None
    input_norm: str = "unit"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def has_attention(self) -> bool:
        return self.kind == "checkpoint" and self.config.arch == "ran"

    def __call__(self, faces: torch.Tensor, boxes: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """faces (B, 3, S, S) in [0, 1] -> probabilities (B, K), mu and nu (B, k+1) or None."""
        if self.kind == "checkpoint":
            with torch.no_grad():
                out = self.model(faces.to(self.device), boxes)
            probs = torch.softmax(out.logits.float(), 1).cpu().numpy()
            mu = None if out.mu is None else out.mu.float().cpu().numpy()
            nu = None if out.nu is None else out.nu.float().cpu().numpy()
            return probs, mu, nu
        x = faces
        if self.input_norm == "imagenet":
            from fercurate.ran.model import IMAGENET_MEAN, IMAGENET_STD

            x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        if self.kind == "torchscript":
            with torch.no_grad():
                raw = self.model(x.to(self.device))
            if isinstance(raw, (tuple, list)):
                raw = raw[0]
            elif hasattr(raw, "logits"):
                raw = raw.logits
            out = raw.float().cpu().numpy()
        else:
            out = self._onnx(x.numpy().astype(np.float32))
        return _as_probs(out, self.labels, self.path), None, None

    def _onnx(self, x: np.ndarray) -> np.ndarray:
        name = self.model.get_inputs()[0].name
        batch = self.model.get_inputs()[0].shape[0]
        if isinstance(batch, int) and batch != x.shape[0]:
            return np.concatenate([self.model.run(None, {name: x[i : i + batch]})[0] for i in range(0, len(x), batch)])
        return self.model.run(None, {name: x})[0]


def _as_probs(out: np.ndarray, labels: list[str], path: Path) -> np.ndarray:
    if out.ndim != 2 or out.shape[1] != len(labels):
        raise InputError(f"{path}: model output has shape {tuple(out.shape)}, expected (batch, {len(labels)})")
    is_prob = np.all(out >= 0) and np.allclose(out.sum(1), 1.0, atol=1e-3)
    if is_prob:
        return out.astype(np.float32)
    e = np.exp(out - out.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def pick_device(device: str) -> torch.device:
    """auto (CUDA if present, else CPU) | cpu | cuda | cuda:N; asking for CUDA without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda requested but no CUDA GPU is available")
    return torch.device(device)


def load_predictor(
    path: str | os.PathLike,
    *,
    device: str = "auto",
    input_size: int | None = None,
    labels: list[str] | None = None,
    input_norm: str = "unit",
) -> Predictor:
    """Load a fercurate checkpoint, TorchScript file or ONNX model for scoring."""
    from fercurate.ran.config import TrainConfig
    from fercurate.ran.model import model_from_checkpoint

    path = Path(path)
    kind = model_kind(path)
    dev = pick_device(device)
    if input_norm not in INPUT_NORMS:
        raise InputError(f"--input-norm must be one of {', '.join(INPUT_NORMS)}")
    if kind == "checkpoint":
        state = load_checkpoint(path)
        if labels is not None and list(labels) != list(state["labels"]):
            raise InputError(f"{path}: --labels {labels} differ from the checkpoint's label map {state['labels']}")
        model = model_from_checkpoint(state).to(dev).eval()
        cfg = TrainConfig(**state["config"]).resolved()
        mp = Path(state["manifest"]["path"]) if state.get("manifest") else None
        return Predictor(kind, path, list(state["labels"]), cfg.input_size, model, cfg, mp, device=dev)
    if kind == "torchscript":
        extra = {"labels.txt": "", "input_size.txt": ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                model = torch.jit.load(str(path), map_location=dev, _extra_files=extra).eval()
        except Exception as exc:  # noqa: BLE001 - a bad user file
            raise InputError(f"{path}: cannot load as TorchScript ({exc})") from exc
        text = {k: v.decode() if isinstance(v, bytes) else v for k, v in extra.items()}
        stored = [s for s in text["labels.txt"].split("\n") if s] if text["labels.txt"] else None
        size = input_size or (int(text["input_size.txt"]) if text["input_size.txt"] else 224)
        names = _labels_for(path, labels or stored, model_out=None)
        return Predictor(kind, path, names, size, model, input_norm=input_norm, device=dev)
    try:
        import onnxruntime as ort  # type: ignore[import-not-found]
    except ImportError as exc:
        raise InputError(f"{path}: scoring ONNX models needs the optional onnxruntime package (pip install onnxruntime)") from exc
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - a bad user file
        raise InputError(f"{path}: cannot load as an ONNX model ({exc})") from exc
    shape = session.get_inputs()[0].shape
    size = input_size or (shape[-1] if isinstance(shape[-1], int) else 224)
    out_shape = session.get_outputs()[0].shape
    names = _labels_for(path, labels, model_out=out_shape[-1] if isinstance(out_shape[-1], int) else None)
    return Predictor(kind, path, names, int(size), session, input_norm=input_norm)


def _labels_for(path: Path, labels: list[str] | None, model_out: int | None) -> list[str]:
    if labels is not None:
        return check_label_map(list(labels), str(path))
    if model_out == 7:
        return list(CANONICAL_LABELS[:7])
    return list(CANONICAL_LABELS)


# --- running a model over samples ----------------------------------------------------------------------


def run_model(
    model: torch.nn.Module | Predictor,
    samples: rdata.Samples,
    store: rdata.FaceStore | None,
    cfg: Any,
    *,
    device: torch.device | str = "cpu",
    landmarks: np.ndarray | None = None,
    use_amp: bool = False,
    batch_size: int = 128,
    workers: int = 0,
) -> dict[str, np.ndarray | None]:
    """Probabilities (N, K) and, for RAN, attention weights mu / nu (N, k+1) for every sample, in order."""
    from fercurate.ran.crops import eval_boxes

    predictor = model if isinstance(model, Predictor) else None
    net = None if predictor else model
    size = predictor.input_size if predictor else cfg.input_size
    face_size = cfg.face_size if cfg is not None else size
    crops = cfg.crops if cfg is not None else "fixed"
    boxes_eval = eval_boxes(cfg) if crops == "random" else None
    batches = [np.arange(i, min(i + batch_size, len(samples))) for i in range(0, len(samples), batch_size)]
    loader = rdata.BatchLoader(batches, faces=None if store is None else store.faces, samples=samples,
                               size=face_size, workers=workers, align=getattr(cfg, "align", "bbox"))
    probs, mus, nus = [], [], []
    was_training = net.training if net is not None else False
    if net is not None:
        net.eval()
    dev = torch.device(device)
    for faces_u8, idx in loader:
        faces, boxes = rdata.prepare_batch(
            faces_u8, input_size=size, train=False, augment=rdata.AugmentConfig(enabled=False), generator=None,
            crops=crops, landmarks=None if landmarks is None else torch.as_tensor(landmarks[idx.numpy()]),
            landmark_scale=getattr(cfg, "landmark_scale", 0.5), landmark_clip=getattr(cfg, "landmark_clip", False),
            eval_boxes=boxes_eval, device=dev,
        )
        if predictor is not None:
            p, mu, nu = predictor(faces, boxes)
        else:
            with torch.no_grad(), torch.autocast(device_type=dev.type, dtype=torch.float16 if dev.type == "cuda" else torch.bfloat16, enabled=use_amp):
                out = net(faces, boxes)
            p = torch.softmax(out.logits.float(), 1).cpu().numpy()
            mu = None if out.mu is None else out.mu.float().cpu().numpy()
            nu = None if out.nu is None else out.nu.float().cpu().numpy()
        probs.append(p)
        if mu is not None:
            mus.append(mu)
            nus.append(nu)
    if net is not None and was_training:
        net.train()
    return {
        "probs": np.concatenate(probs) if probs else np.zeros((0, 0), dtype=np.float32),
        "mu": np.concatenate(mus) if mus else None,
        "nu": np.concatenate(nus) if nus else None,
    }


# --- metrics ---------------------------------------------------------------------------------------------


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
) -> tuple[Manifest, list[tuple[str, set[str]]]]:
    """The manifest to read and each subset's ids, checking that every subset belongs to that manifest."""
    from fercurate.subsets import find_subset, subset_ids

    infos = []
    if manifest is not None:
        mpath = ws.resolve_manifest(manifest)
        m = read_manifest(mpath)
        for s in subsets:
            if s.endswith(".parquet"):
                info = find_subset(s)
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
    return m, [(i.name, subset_ids(i)) for i in infos]


def _all_subsets(ws: Workspace):  # noqa: ANN202
    from fercurate.subsets import list_subsets

    return list_subsets(ws)


def evaluate(
    model_path: str | os.PathLike,
    *,
    manifest: str | None = None,
    splits: list[str] | None = None,
    subsets: list[str] | None = None,
    report_dir: str | os.PathLike | None = None,
    device: str = "auto",
    batch_size: int = 128,
    input_size: int | None = None,
    labels: list[str] | None = None,
    input_norm: str = "unit",
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
    """Evaluate a model on a manifest's split(s) and subsets and write the report (see module doc)."""
    ws = Workspace.current()
    predictor = load_predictor(model_path, device=device, input_size=input_size, labels=labels, input_norm=input_norm)
    subsets = list(subsets or [])
    m, subset_members = _resolve_inputs(predictor, manifest, subsets, ws)
    splits = list(splits or [])
    if not splits and not subsets:
        present = set(m.table.column("split").cast(pa.string()).to_pylist())
        splits = ["test"] if "test" in present else []
    k = len(predictor.labels)
    union = set().union(*(ids for _, ids in subset_members)) if subset_members and not splits else None
    samples = rdata.select_samples(m, splits=splits, ids=union, num_classes=k, require_labels=False)
    excluded = list(samples.excluded)
    notes: list[str] = []
    cfg = predictor.config
    face_size = cfg.face_size if cfg is not None else predictor.input_size
    store = None
    if cache:
        store = rdata.load_faces(samples, face_size, cache_dir=cache_dir, workers=workers, desc="decode faces", align=getattr(cfg, "align", "bbox"))
        samples, store = rdata.drop_failures(samples, store)
        excluded = list(samples.excluded)
    else:
        samples = rdata.drop_missing_files(samples)
        excluded = list(samples.excluded)
    failed = [e for e in excluded if e["kind"] == "unreadable"]
    if strict and failed:
        raise InputError(f"{len(failed)} images could not be read (first: {failed[0]['sample_id']}: {failed[0]['reason']})")
    if len(samples) == 0:
        raise InputError(f"{m.path}: no readable rows to evaluate ({excluded[0]['reason'] if excluded else 'empty selection'})")
    lms = None
    if cfg is not None and cfg.crops == "landmark":
        lms = rdata.landmark_fractions(samples, store)
    res = run_model(predictor, samples, store, cfg, device=predictor.device, landmarks=lms, batch_size=batch_size)
    probs = res["probs"]
    preds = probs.argmax(1)
    ids = samples.sample_ids
    excluded_ids = {e["sample_id"] for e in excluded}
    groups: list[tuple[str, np.ndarray, set[str] | None]] = []
    for split in splits:
        groups.append((split, np.ones(len(samples), dtype=bool), None))
    in_split = set(ids.tolist())
    for name, members in subset_members:
        groups.append((name, np.isin(ids, np.asarray(sorted(members), dtype=object)), members))
        if splits:
            outside = len(members - in_split - excluded_ids)
            if outside:
                notes.append(f"{name}: {outside} of its {len(members)} samples are not in split "
                             f"{', '.join(splits)} and were not scored")
    results = []
    for name, mask, members in groups:
        summ = accuracy_summary(samples.labels[mask], preds[mask], k, n_boot=n_boot, seed=seed)
        summ.update({
            "group": name,
            "unlabelled": int(((samples.labels < 0) & mask).sum()),
            # rows of this group that could not be scored (unreadable image, label outside the label space)
            "excluded": len(excluded_ids) if members is None else len(members & excluded_ids),
            **paper_figures(m.dataset, f"split:{name}" if members is None else name),
        })
        results.append(summ)
    table = format_table(results, predictor, m) + "\n\n" + format_per_class(results, predictor.labels)
    out_dir = Path(report_dir) if report_dir else None
    probs_path = None
    if out_dir is not None:
        _write_report(out_dir, results, samples, probs, res, predictor, m, excluded, notes, table, draw_attention, store, lms)
    if save_probs:
        probs_path = write_probs(probs_frame(ids, probs), save_probs, predictor, m)
    echo(table)
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
    """One text table: every group with our figures and the paper's beside them."""
    arch = predictor.config.arch if predictor.config is not None else predictor.kind
    head = f"{predictor.path.name} ({arch}, {len(predictor.labels)} classes) on {m.name}"
    cols = f"{'group':<28} {'n':>6} {'acc %':>7} {'95% CI':>15} {'mean-cls %':>10} {'paper RAN':>9} {'paper base':>10} {'excl.':>6}"
    lines = [head, cols, "-" * len(cols)]
    for r in results:
        ci = r.get("ci95", {}).get("accuracy")
        ci_s = f"{100 * ci[0]:.2f}-{100 * ci[1]:.2f}" if ci and np.isfinite(ci[0]) else "-"
        pr = f"{r['paper_ran']:.2f}" if r.get("paper_ran") is not None else "-"
        pb = f"{r['paper_baseline']:.2f}" if r.get("paper_baseline") is not None else "-"
        lines.append(f"{r['group']:<28} {r['n']:>6} {100 * r['accuracy']:>7.2f} {ci_s:>15} "
                     f"{100 * r['mean_class_accuracy']:>10.2f} {pr:>9} {pb:>10} {r['excluded'] + r['unlabelled']:>6}")
    return "\n".join(lines)


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
) -> pd.DataFrame:
    """Class probabilities for every readable row of a manifest (or one split).

    Returns DataFrame(sample_id, prob_0 .. prob_{K-1}) with column j = canonical class j (K = 8, or 7 for
    7-class models). Rows whose image cannot be read are left out and listed in ``df.attrs['excluded']``.
    """
    predictor = load_predictor(model_path, device=device)
    m = read_manifest(Workspace.current().resolve_manifest(str(manifest_path)))
    samples = rdata.select_samples(m, splits=[split] if split else [], num_classes=len(predictor.labels), require_labels=False)
    cfg = predictor.config
    face_size = cfg.face_size if cfg is not None else predictor.input_size
    store = rdata.load_faces(samples, face_size, workers=workers, desc="decode faces", align=getattr(cfg, "align", "bbox"))
    samples, store = rdata.drop_failures(samples, store)
    lms = rdata.landmark_fractions(samples, store) if cfg is not None and cfg.crops == "landmark" else None
    res = run_model(predictor, samples, store, cfg, device=predictor.device, landmarks=lms, batch_size=batch_size)
    df = probs_frame(samples.sample_ids, res["probs"])
    df.attrs["excluded"] = list(samples.excluded)
    df.attrs["labels"] = list(predictor.labels)
    return df


# --- report files --------------------------------------------------------------------------------------


def _write_report(out: Path, results, samples, probs, res, predictor, m, excluded, notes, table, draw_n, store, lms) -> None:  # noqa: ANN001, PLR0913
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "model": str(predictor.path), "model_kind": predictor.kind, "labels": predictor.labels,
        "manifest": str(m.path), "dataset": m.dataset, "groups": results, "notes": notes,
        "excluded": len(excluded),
    }
    write_text(out / "metrics.json", json.dumps(summary, indent=2, default=_json_default))
    write_text(out / "report.txt", table + "\n" + "".join(f"note: {n}\n" for n in notes))
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
    preds = probs.argmax(1)
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
