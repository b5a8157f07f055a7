"""Loading a model of any supported kind and running it over faces: ``fercurate eval``'s predictors.

``--model`` may be a fercurate checkpoint (``ran.pt`` / ``baseline.pt``), a TorchScript file or an ONNX
model (the optional ``onnxruntime`` package). A checkpoint carries everything needed to score it; a
TorchScript or ONNX model is fed and read by its **contract** (label order, input size, channels,
layout, input normalisation, output kind: :mod:`fercurate.ran.contract`), given on the command line,
in a sidecar ``<model file>.json`` or inside the file, checked against the model's own input shape
(ONNX) or trial runs (TorchScript) before any face is scored; a value nothing gives is an error, never
a guess.

Outputs are permuted into the canonical order (:data:`fercurate.labels.CANONICAL_LABELS`) before
anything is scored, so every figure downstream is in one label space.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fercurate.errors import InputError
from fercurate.labels import CANONICAL_LABELS, check_order, order_name, to_canonical
from fercurate.progress import progress
from fercurate.ran import data as rdata
from fercurate.ran.batches import AugmentConfig, BatchLoader, prepare_batch
from fercurate.ran.checkpoint import load_checkpoint, model_kind
from fercurate.ran.contract import (  # noqa: F401 - IMAGENET_*, sidecar helpers: their old home was this module
    COMMAND_LINE,
    CONTRACT_KEYS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ONNX_PREFIX,
    SIDECAR_SUFFIX,
    ModelContract,
    apply_input_shape,
    apply_trials,
    check_norm_channels,
    check_output_shape,
    checked,
    read_sidecar,
    require_complete,
    resolve,
    show,
    sidecar_path,
)
from fercurate.ran.config import CHANNELS  # noqa: F401 - kept importable from here


@dataclass
class Predictor:
    """A loaded model of any supported kind; called on float faces in [0, 1], returns canonical-order outputs."""

    kind: str
    path: Path
    labels: list[str]  # the classes scored, canonical order (8, or 7 without contempt)
    input_size: int
    model: Any = None
    config: Any = None  # TrainConfig for fercurate checkpoints
    manifest_path: Path | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    contract: ModelContract = field(default_factory=ModelContract)
    model_labels: list[str] | None = None  # the model's own output order

    @property
    def input_norm(self) -> str:
        """How the model's input values are scaled (a checkpoint normalises inside the model: unit)."""
        return self.contract.input_norm or "unit"

    @property
    def has_attention(self) -> bool:
        return self.kind == "checkpoint" and self.config.arch == "ran"

    @property
    def crops(self) -> str:
        """The crop mode the input path must serve: a checkpoint's, a fercurate TorchScript file's, else fixed."""
        if self.config is not None:
            return self.config.crops
        return self.contract.crops or "fixed"

    @property
    def align(self) -> str:
        """How faces are cut for this model: a checkpoint's ``--align``, a contract's ``dlib5``, else ``bbox``."""
        from fercurate.ran.config import ALIGNMENTS

        if self.config is not None:
            return self.config.align
        return self.contract.alignment if self.contract.alignment in ALIGNMENTS else "bbox"

    @property
    def permutation(self) -> list[int]:
        """Model output column of each canonical class in :attr:`labels`."""
        return to_canonical(self.model_labels or self.labels)

    def __call__(self, faces: torch.Tensor, boxes: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """faces (B, 3, S, S) in [0, 1] -> probabilities (B, K) in canonical order, mu and nu (B, k+1) or None."""
        perm = self.permutation
        if self.kind == "checkpoint":
            with torch.no_grad():
                out = self.model(faces.to(self.device), None if boxes is None else boxes.to(self.device))
            probs = torch.softmax(out.logits.float(), 1).cpu().numpy()[:, perm]
            mu = None if out.mu is None else out.mu.float().cpu().numpy()
            nu = None if out.nu is None else out.nu.float().cpu().numpy()
            return probs, mu, nu
        return as_probs(self.raw_outputs(faces, boxes), self.model_labels or self.labels, self.path,
                        self.contract.outputs or "logits")[:, perm], None, None

    def raw_outputs(self, faces: torch.Tensor, boxes: torch.Tensor | None = None) -> np.ndarray:
        """A TorchScript/ONNX model's own outputs (B, K) for faces (B, 3, S, S) in [0, 1], in its column order."""
        x = self.model_input(faces)
        if self.kind == "torchscript":
            with torch.no_grad():
                raw = self.model(x, boxes.to(x.device)) if self.crops == "landmark" else self.model(x)
            if isinstance(raw, (tuple, list)):
                raw = raw[0]
            elif hasattr(raw, "logits"):
                raw = raw.logits
            return raw.float().cpu().numpy()
        return self._onnx(x.cpu().numpy().astype(np.float32))

    def model_input(self, faces: torch.Tensor) -> torch.Tensor:
        """Faces in [0, 1] RGB (B, 3, S, S) -> the model's input: on its device, in its channels, normalisation
        and layout.

        Every tensor made here follows the faces' device and dtype (mean/std included), so CUDA faces
        never meet CPU constants.
        """
        x = faces.to(self.device)
        channels = self.contract.channels or "rgb"
        if channels == "bgr":
            x = x.flip(1)
        elif channels == "gray":
            w = torch.as_tensor((0.299, 0.587, 0.114), dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            x = (x * w).sum(1, keepdim=True)
        if self.input_norm != "unit":
            mean, std = self.contract.norm()
            x = (x - torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)) \
                / torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        if self.contract.layout == "nhwc":
            x = x.permute(0, 2, 3, 1).contiguous()
        return x

    def _onnx(self, x: np.ndarray) -> np.ndarray:
        """Run an ONNX session; a fixed batch size B gets chunks of B, the last one padded and the padding dropped."""
        inp = self.model.get_inputs()[0]
        batch = inp.shape[0]
        if not isinstance(batch, int) or batch <= 0 or batch == x.shape[0]:
            return self.model.run(None, {inp.name: x})[0]
        outs = []
        for i in range(0, len(x), batch):
            chunk = x[i : i + batch]
            n = len(chunk)
            if n < batch:
                chunk = np.concatenate([chunk, np.zeros((batch - n, *chunk.shape[1:]), dtype=chunk.dtype)])
            outs.append(self.model.run(None, {inp.name: chunk})[0][:n])
        return np.concatenate(outs)


def as_probs(out: np.ndarray, labels: list[str], path: Path, outputs: str = "logits") -> np.ndarray:
    """A model's outputs, as its contract says they are, -> probabilities; checks the class count and values.

    ``logits``: softmax (in float64, so close logits do not flatten); ``probabilities``: rows must be
    non-negative and sum to 1; ``sigmoid``: scores must lie in [0, 1] and are divided by their sum (the
    argmax is the model's own, never a softmax over scores).
    """
    if out.ndim != 2 or out.shape[1] != len(labels):
        raise InputError(f"{path}: model output has shape {tuple(out.shape)}, expected (batch, {len(labels)}) "
                         f"for its label order {labels}")
    v = out.astype(np.float64)
    if not np.isfinite(v).all():
        row = int(np.argmax(~np.isfinite(v).all(1)))
        raise InputError(f"{path}: the model's outputs are not finite (row {row} of a batch: {out[row].tolist()})")
    if outputs == "logits":
        e = np.exp(v - v.max(1, keepdims=True))
        return (e / e.sum(1, keepdims=True)).astype(np.float32)
    if outputs == "probabilities":
        bad = (v < -1e-6).any(1) | (np.abs(v.sum(1) - 1.0) > 1e-3)
        if bad.any():
            row = int(np.argmax(bad))
            raise InputError(f"{path}: outputs are declared probabilities, but row {row} of a batch is "
                             f"{np.round(out[row], 4).tolist()} (sum {v[row].sum():.4f}); declare --outputs logits "
                             f"or sigmoid")
        return np.clip(v, 0.0, None).astype(np.float32)
    bad = ((v < -1e-6) | (v > 1 + 1e-6)).any(1)
    if bad.any():
        row = int(np.argmax(bad))
        raise InputError(f"{path}: outputs are declared sigmoid scores in [0, 1], but row {row} of a batch is "
                         f"{np.round(out[row], 4).tolist()}; declare --outputs logits")
    v = np.clip(v, 0.0, 1.0)
    total = v.sum(1, keepdims=True)
    uniform = np.full_like(v, 1.0 / v.shape[1])
    return np.where(total > 0, v / np.where(total > 0, total, 1.0), uniform).astype(np.float32)


def pick_device(device: str) -> torch.device:
    """auto (CUDA if present, else CPU) | cpu | cuda | cuda:N; asking for CUDA without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda requested but no CUDA GPU is available")
    return torch.device(device)


def _scored_labels(model_labels: list[str]) -> list[str]:
    return [c for c in CANONICAL_LABELS if c in model_labels]


def load_predictor(
    path: str | os.PathLike,
    *,
    device: str = "auto",
    input_size: int | None = None,
    labels: str | list[str] | None = None,
    input_norm: str | None = None,
    channels: str | None = None,
    layout: str | None = None,
    outputs: str | None = None,
    override_contract: bool = False,
) -> Predictor:
    """Load a fercurate checkpoint, TorchScript file or ONNX model with its contract (see the module doc).

    The keywords are the command line's contract values; ``override_contract`` lets them replace values
    stored with a TorchScript/ONNX model where they differ (without it a difference is refused).
    """
    from fercurate.ran.config import TrainConfig
    from fercurate.ran.model import model_from_checkpoint

    path = Path(path)
    kind = model_kind(path)
    dev = pick_device(device)
    given = checked({"labels": labels, "input_size": input_size, "channels": channels, "layout": layout,
                     "input_norm": input_norm, "outputs": outputs}, COMMAND_LINE)
    contract = ModelContract()
    contract.merge(given, COMMAND_LINE, COMMAND_LINE)
    if kind == "checkpoint":
        state = load_checkpoint(path)
        own = check_order(list(state["labels"]), str(path))
        if contract.labels is not None and contract.labels != own:
            raise InputError(f"{path}: --labels {contract.labels} differ from the checkpoint's label map {own}; "
                             f"a checkpoint carries its own order, drop --labels")
        model = model_from_checkpoint(state).to(dev).eval()
        cfg = TrainConfig(**state["config"]).resolved()
        mp = Path(state["manifest"]["path"]) if state.get("manifest") else None
        contract = checkpoint_contract(contract, own, cfg.input_size, path)
        return Predictor(kind, path, _scored_labels(own), cfg.input_size, model, cfg, mp, device=dev,
                         contract=contract, model_labels=own)
    return _load_file_model(path, kind, dev, given, override_contract)


def checkpoint_contract(given: ModelContract, labels: list[str], input_size: int, path: Path) -> ModelContract:
    """A checkpoint's contract (it is fed [0, 1] RGB NCHW faces and gives logits); a command-line value that
    differs from it is refused: a checkpoint carries its own."""
    own = {"labels": labels, "input_size": input_size, "channels": "rgb", "layout": "nchw", "input_norm": "unit",
           "outputs": "logits"}
    for key, value in own.items():
        if key in given.sources and getattr(given, key) != value:
            raise InputError(f"{path}: --{key.replace('_', '-')} {show(key, getattr(given, key))} differs from the "
                             f"checkpoint's {show(key, value)}; a checkpoint carries its own contract, drop the option")
    contract = ModelContract()
    for key, value in own.items():
        contract.set(key, value, "checkpoint")
    return contract


def _load_file_model(path: Path, kind: str, dev: torch.device, given: dict[str, Any], override: bool) -> Predictor:
    """A TorchScript or ONNX model with its contract resolved, checked against the model and complete."""
    sidecar = sidecar_path(path)
    layers = [(COMMAND_LINE, given), (f"sidecar {sidecar.name}", checked(read_sidecar(path), str(sidecar)))]
    if kind == "torchscript":
        session, stored = _load_torchscript(path, dev)
        layers.append(("TorchScript extra files", checked(stored, f"{path} (extra files)")))
    else:
        session = _onnx_session(path)
        meta = session.get_modelmeta().custom_metadata_map or {}
        stored = {k[len(ONNX_PREFIX):]: v for k, v in meta.items() if k.startswith(ONNX_PREFIX)}
        layers.append(("ONNX metadata_props", checked(stored, f"{path} (metadata_props)")))
        dev = torch.device("cpu")
    contract = resolve(path, layers, override=override)
    predictor = Predictor(kind, path, _scored_labels(contract.labels or list(CANONICAL_LABELS)),
                          int(contract.input_size or 0), session, device=dev, contract=contract,
                          model_labels=contract.labels)
    if kind == "onnx":
        apply_input_shape(contract, session.get_inputs()[0].shape, path)
        check_output_shape(contract, session.get_outputs()[0].shape, path)
        _check_onnx_input_type(session, path)
    elif contract.crops != "landmark":  # a landmark export also takes boxes: its contract.json states everything
        apply_trials(contract, lambda lay, c, s: _trial(predictor, lay, c, s), path)
    require_complete(contract, path, kind)
    check_norm_channels(contract, path)
    predictor.input_size = int(contract.input_size)
    if contract.crops != "landmark":
        _probe(predictor)
    return predictor


def _load_torchscript(path: Path, dev: torch.device) -> tuple[Any, dict[str, Any]]:
    """The TorchScript module and the contract in its extra files (contract.json, labels.txt, input_size.txt)."""
    extra = {"labels.txt": "", "input_size.txt": "", "contract.json": ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.load(str(path), map_location=dev, _extra_files=extra).eval()
    except Exception as exc:  # noqa: BLE001 - a bad user file
        raise InputError(f"{path}: cannot load as TorchScript ({exc})") from exc
    text = {k: (v.decode("utf-8-sig") if isinstance(v, bytes) else v) for k, v in extra.items()}
    stored: dict[str, Any] = {}
    if text["contract.json"]:
        try:
            stored = json.loads(text["contract.json"])
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: its contract.json extra file is not valid JSON ({exc.msg})") from exc
        if not isinstance(stored, dict):
            raise InputError(f"{path}: its contract.json extra file must be a JSON object")
        if "crops" in stored:  # fercurate's own export: NCHW faces in, logits out (older exports did not say)
            stored = {"layout": "nchw", "outputs": "logits", **stored}
    if text["labels.txt"].strip():
        stored["labels"] = [s.strip() for s in text["labels.txt"].splitlines() if s.strip()]
    if text["input_size.txt"].strip():
        stored["input_size"] = text["input_size.txt"].strip()
    return model, stored


def _onnx_session(path: Path) -> Any:
    try:
        import onnxruntime as ort  # type: ignore[import-not-found]
    except ImportError as exc:
        raise InputError(f"{path}: scoring ONNX models needs the optional onnxruntime package "
                         f"(pip install 'fercurate[onnx]' or pip install onnxruntime)") from exc
    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - a bad user file
        raise InputError(f"{path}: cannot load as an ONNX model ({exc})") from exc


def _check_onnx_input_type(session: Any, path: Path) -> None:
    kind = session.get_inputs()[0].type
    if kind != "tensor(float)":
        raise InputError(f"{path}: the model's input is {kind}; fercurate feeds float32 images (tensor(float))")


def _trial(predictor: Predictor, layout: str, n_channels: int, size: int) -> str | None:
    """Run one zero input of that layout, channel count and size through a TorchScript model: None if it
    gives (1, K) outputs, else what went wrong."""
    shape = (1, n_channels, size, size) if layout == "nchw" else (1, size, size, n_channels)
    try:
        with torch.no_grad():
            out = predictor.model(torch.zeros(shape, device=predictor.device))
        out = out[0] if isinstance(out, (tuple, list)) else getattr(out, "logits", out)
    except Exception as exc:  # noqa: BLE001 - the model's own complaint, reported
        return _first_line(exc)
    k = len(predictor.model_labels or ()) or out.shape[-1]
    return None if tuple(out.shape) == (1, k) else f"its output has shape {tuple(out.shape)}, not (1, {k})"


def _probe(predictor: Predictor) -> None:
    """One zero batch through the whole input and output path, before any face: a contract the model does not
    take fails here, naming the contract, not in the middle of scoring."""
    c = predictor.contract
    faces = torch.zeros(2, 3, predictor.input_size, predictor.input_size)
    try:
        predictor(faces)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - the model's own complaint, reported
        shape = tuple(predictor.model_input(faces).shape)
        raise InputError(f"{predictor.path}: an input shaped {shape} as its contract says ({c.describe()}) does not "
                         f"run through the model: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:400] + ("..." if len(text) > 400 else "")


def describe(predictor: Predictor) -> str:
    """One line: the label order a model's outputs were read in, the rest of its contract, and the sources."""
    c = predictor.contract
    names = predictor.model_labels or predictor.labels
    known = order_name(names)
    order = f"{known} order" if known else ",".join(names)
    src = c.sources.get("labels", "checkpoint")
    moved = "" if known in ("canonical", "canonical7") else ", permuted to canonical"
    if predictor.kind == "checkpoint":
        rest = f"input {predictor.input_size}px rgb, unit values"
    else:
        rest = c.describe()
    return (f"outputs read in {order} ({len(names)} classes, from {src}){moved}; {rest}"
            + (f", alignment {c.alignment}" if c.alignment and predictor.kind == "checkpoint" else "")
            + "".join(f"; {n}" for n in c.notes))


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
    desc: str = "score",
) -> dict[str, np.ndarray | None]:
    """Probabilities (N, K, canonical order) and, for RAN, attention weights mu / nu (N, k+1), in sample order.

    Shows a progress bar in images/s (``desc``): validation during training and ``fercurate eval`` both
    run through here.
    """
    from fercurate.ran.crops import eval_boxes

    predictor = model if isinstance(model, Predictor) else None
    net = None if predictor else model
    size = predictor.input_size if predictor else cfg.input_size
    face_size = cfg.face_size if cfg is not None else size
    crops = predictor.crops if predictor is not None else cfg.crops
    boxes_eval = eval_boxes(cfg) if crops == "random" and cfg is not None else None
    batches = [np.arange(i, min(i + batch_size, len(samples))) for i in range(0, len(samples), batch_size)]
    loader = BatchLoader(batches, faces=None if store is None else store.faces, samples=samples,
                               size=face_size, workers=workers,
                               align=predictor.align if predictor is not None else cfg.align)
    probs, mus, nus = [], [], []
    was_training = net.training if net is not None else False
    if net is not None:
        net.eval()
    dev = torch.device(device)
    scale = cfg.landmark_scale if cfg is not None else (predictor.contract.landmark_scale or 0.5)
    # random-crop TorchScript exports carry their evaluation boxes inside; checkpoints get them here
    batch_crops = "fixed" if crops == "random" and boxes_eval is None else crops
    if predictor is not None and cfg is None and predictor.crops == "landmark" and landmarks is None:
        raise InputError(f"{predictor.path}: a landmark-crop model needs face landmarks (none in the manifest)")
    with progress(total=len(samples), desc=desc, unit="img", leave=False) as bar:
        for faces_u8, idx in loader:
            faces, boxes = prepare_batch(
                faces_u8, input_size=size, train=False, augment=AugmentConfig(enabled=False), generator=None,
                crops=batch_crops,
                landmarks=None if landmarks is None else torch.as_tensor(landmarks[idx.numpy()]),
                landmark_scale=scale, landmark_clip=getattr(cfg, "landmark_clip", False),
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
            bar.update(len(idx))
    if net is not None and was_training:
        net.train()
    return {
        "probs": np.concatenate(probs) if probs else np.zeros((0, 0), dtype=np.float32),
        "mu": np.concatenate(mus) if mus else None,
        "nu": np.concatenate(nus) if nus else None,
    }
