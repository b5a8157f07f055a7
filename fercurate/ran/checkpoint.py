"""Checkpoints and model files: saving/loading fercurate checkpoints, TorchScript export.

A fercurate checkpoint (``ran.pt`` / ``baseline.pt``) is a ``torch.save`` dict holding everything needed
to evaluate it or to continue its training exactly: model, optimiser, LR schedule and AMP scaler states,
epoch and batch position, RNG states, the full training config, the label map and the SHA-256 of the
manifest it was trained on. It loads with ``torch.load(weights_only=True)`` (tensors and plain types only).

:func:`find_checkpoint` finds the one a resumed run continues; :func:`load_pretrained_head` starts a new
run's classifier from one.

``--model`` for evaluation may also be a TorchScript file or an ONNX model; see
:mod:`fercurate.ran.predictor` for their contract (label order, input size, normalisation).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from fercurate.atomic import atomic_path
from fercurate.errors import InputError
from fercurate.labels import check_order

FORMAT = "fercurate-ran-checkpoint"
FORMAT_VERSION = 1


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (the manifest hash stored in checkpoints)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a checkpoint atomically (temp file + rename), so a kill never leaves a broken file.

    Serialised in memory first and then written as bytes: torch's own file writer turns a full disk
    into a RuntimeError ("unexpected pos ... inline_container.cc"); a plain write is one StorageError
    line naming the file, and the previous checkpoint stays as it was.
    """
    state = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    buf = io.BytesIO()
    torch.save(state, buf)
    return _write(Path(path), buf)


def _write(path: Path, buf: io.BytesIO) -> Path:
    with atomic_path(path, suffix=".pt.tmp") as tmp, open(tmp, "wb") as fh:
        fh.write(buf.getbuffer())
    return path


def model_kind(path: str | os.PathLike) -> str:
    """'checkpoint', 'torchscript' or 'onnx', from the file's content (not its name)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: model file not found")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "checkpoint"
    with open(path, "rb") as fh:
        head = fh.read(64)
    if path.suffix.lower() == ".onnx" or b"pytorch" in head.lower() or b"onnx" in head.lower():
        return "onnx"
    raise InputError(f"{path}: not a fercurate checkpoint, TorchScript file or ONNX model")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a fercurate checkpoint (format, label map)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise InputError(f"{path}: cannot read as a fercurate checkpoint ({exc})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise InputError(f"{path}: not a fercurate checkpoint (no '{FORMAT}' marker; pass TorchScript/ONNX files as they are)")
    if int(state.get("format_version", 0)) > FORMAT_VERSION:
        raise InputError(f"{path}: checkpoint format v{state['format_version']} is newer than this fercurate reads")
    labels = state.get("labels")
    if not isinstance(labels, (list, tuple)):
        raise InputError(f"{path}: no label map (a list of class names) in the checkpoint")
    check_order(list(labels), f"{path} (label map)")
    return state


class _WithBoxes(torch.nn.Module):
    """faces (and boxes) -> logits, for export: random crops carry their evaluation boxes as a buffer;
    landmark crops take each face's boxes as a second input."""

    def __init__(self, model: torch.nn.Module, boxes: torch.Tensor | None = None) -> None:
        super().__init__()
        self.model = model
        if boxes is not None:
            self.register_buffer("boxes", boxes.clone())

    def forward(self, faces: torch.Tensor, boxes: torch.Tensor | None = None) -> torch.Tensor:
        if boxes is None:
            boxes = self.boxes.unsqueeze(0).expand(faces.shape[0], -1, -1)
        return self.model(faces, boxes).logits


def export_torchscript(checkpoint: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Trace a checkpoint's model (faces in [0, 1] -> logits) to a TorchScript file carrying its contract.

    The crop mode is kept: fixed crops are built into the model; random-crop checkpoints carry the
    boxes they are evaluated with (:func:`fercurate.ran.crops.eval_boxes`); landmark-crop checkpoints
    take ``(faces, boxes)``, the boxes (B, k, 4) cut around each face's landmarks. The extra files
    ``labels.txt``, ``input_size.txt`` and ``contract.json`` say how to feed it.
    """
    from fercurate.ran.crops import landmark_boxes
    from fercurate.ran.config import TrainConfig
    from fercurate.ran.crops import eval_boxes
    from fercurate.ran.model import model_from_checkpoint

    state = load_checkpoint(checkpoint)
    cfg = TrainConfig(**state["config"]).resolved()
    net = model_from_checkpoint(state).eval()
    if hasattr(net, "cpu_chunk_pixels"):
        net.cpu_chunk_pixels = 1 << 62  # trace one backbone batch: a traced slice loop would fix the batch size
    size = int(state["config"]["input_size"])
    faces = torch.rand(2, 3, size, size)
    crops = cfg.crops if state.get("arch", cfg.arch) == "ran" else "fixed"
    if crops == "random":
        model: torch.nn.Module = _WithBoxes(net, eval_boxes(cfg)).eval()
        example: tuple[torch.Tensor, ...] = (faces,)
    elif crops == "landmark":
        model = _WithBoxes(net).eval()
        centres = torch.rand(2, 5, 2) * 0.5 + 0.25
        example = (faces, landmark_boxes(centres, cfg.landmark_scale))
    else:
        from fercurate.ran.model import LogitsOnly

        model = LogitsOnly(net).eval()
        example = (faces,)
    out = Path(out)
    contract = {"labels": list(state["labels"]), "input_size": size, "channels": "rgb", "input_norm": "unit",
                "alignment": cfg.align, "crops": crops, "landmark_scale": cfg.landmark_scale}
    extra = {"labels.txt": "\n".join(state["labels"]), "input_size.txt": str(size), "contract.json": json.dumps(contract)}
    with warnings.catch_warnings():
        # tracing is exact here: shapes only decide which crops are cut, never the data path
        warnings.simplefilter("ignore")
        with torch.no_grad():
            traced = torch.jit.trace(model, example)
        buf = io.BytesIO()
        torch.jit.save(traced, buf, _extra_files=extra)
    return _write(out, buf)


def find_checkpoint(resume: str | os.PathLike, arch: str) -> Path:
    """The checkpoint to resume: ``resume`` itself, or in a run folder ``<arch>.pt`` else its first ``*.pt``
    that is no ``*.best.pt``."""
    path = Path(resume)
    if path.is_dir():
        candidates = [path / f"{arch}.pt"] + sorted(p for p in path.glob("*.pt") if not p.name.endswith(".best.pt"))
        for c in candidates:
            if c.exists():
                return c
        raise InputError(f"{path}: no checkpoint (*.pt) to resume from")
    if not path.exists():
        raise InputError(f"{path}: checkpoint to resume not found")
    return path


def load_pretrained_head(model: torch.nn.Module, path: str, labels: list[str]) -> str:
    """Start the classifier (and RAN's attention) from a fercurate checkpoint with the same label map.

    From a baseline checkpoint, RAN's FC gets the baseline's weights split over [F_i : F_m]
    (:func:`fercurate.ran.model.head_from_baseline`); from a RAN checkpoint, a RAN takes FC, q0 and q1
    as they are. Returns a one-line report.
    """
    from fercurate.ran.model import RegionAttentionNetwork, head_from_baseline

    state = load_checkpoint(path)
    if list(state["labels"]) != list(labels):
        raise InputError(f"{path}: --pretrained-head needs the same label map as this run "
                         f"(file: {state['labels']}, run: {labels})")
    weights = state["model"]
    if state.get("arch") == "ran":
        if not isinstance(model, RegionAttentionNetwork):
            raise InputError(f"{path}: a RAN checkpoint's head (1024-d) does not fit a baseline; "
                             "use --pretrained without --pretrained-head")
        head = {k: v for k, v in weights.items() if k.split(".")[0] in ("fc", "q0", "q1")}
        model.load_state_dict(head, strict=False)
        return f"{path}: classifier and attention (fc, q0, q1) loaded from the RAN checkpoint"
    head_from_baseline(model, weights["fc.weight"], weights["fc.bias"])
    how = "split over [F_i : F_m], q0 = q1 = 0" if isinstance(model, RegionAttentionNetwork) else "as is"
    return f"{path}: classifier loaded from the baseline checkpoint ({how})"
