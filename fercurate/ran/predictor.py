"""Loading a model of any supported kind and running it over faces: ``fercurate eval``'s predictors.

``--model`` may be a fercurate checkpoint (``ran.pt`` / ``baseline.pt``), a TorchScript file or an ONNX
model (the optional ``onnxruntime`` package). A model's **contract** says how to feed it and how to read
its outputs:

* ``labels``: the class of each output column, in the model's order (any of the orders in
  :mod:`fercurate.labels`, 8 classes or 7 without contempt);
* ``input_size``: H = W of the input (default: the ONNX input shape, else 224);
* ``channels``: ``rgb`` (default), ``bgr`` or ``gray`` (one channel);
* ``input_norm``: ``unit`` (values in [0, 1], default) or ``imagenet`` (ImageNet mean/std);
* ``alignment``: how faces were prepared for training: ``dlib5`` makes fercurate align them as
  ``fercurate train --align dlib5`` does; ``bbox`` (or any other text, recorded and reported) feeds the
  manifest's face box made square, resized to the input size;
* ``crops`` / ``landmark_scale`` (TorchScript files exported by fercurate): ``landmark`` models take
  ``(faces, boxes)``, the boxes cut around the manifest's landmarks; ``random`` ones carry their boxes.

Where the contract comes from, first match wins per field: the command line (``--labels``,
``--input-size``, ``--input-norm``); a JSON **sidecar** next to the model named ``<model file>.json``
(e.g. ``model.onnx.json``) holding those keys; inside the file (ONNX ``metadata_props`` with keys
``fercurate.labels`` (comma list), ``fercurate.input_size``, ``fercurate.channels``,
``fercurate.input_norm``, ``fercurate.alignment``; TorchScript extra files ``labels.txt`` (one name per
line), ``input_size.txt`` and ``contract.json``). A TorchScript or ONNX model whose label order is given
by none of them is refused: scoring it in a guessed order would report wrong numbers.

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
from fercurate.labels import CANONICAL_LABELS, check_order, order_name, parse_labels, to_canonical
from fercurate.progress import progress
from fercurate.ran import data as rdata
from fercurate.ran.batches import AugmentConfig, BatchLoader, prepare_batch
from fercurate.ran.checkpoint import load_checkpoint, model_kind
from fercurate.ran.config import INPUT_NORMS

CHANNELS = ("rgb", "bgr", "gray")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SIDECAR_SUFFIX = ".json"
CONTRACT_KEYS = ("labels", "input_size", "channels", "input_norm", "alignment", "crops", "landmark_scale")
ONNX_PREFIX = "fercurate."
HOW_TO_GIVE_LABELS = (
    "give the order of its outputs: --labels ORDER (one of canonical, canonical7, affectnet, fer2013, ferplus, "
    "rafdb, sfew), --labels names.txt (one class name per line) or --labels a,b,c; or write a sidecar "
    "'{sidecar}' with {{\"labels\": [...]}}; or store it in the file (ONNX metadata_props "
    "'fercurate.labels', TorchScript extra file 'labels.txt')"
)


@dataclass
class ModelContract:
    """How to feed a model and read its outputs (see the module doc)."""

    labels: list[str] | None = None  # model output order, canonical names
    input_size: int | None = None
    channels: str = "rgb"
    input_norm: str = "unit"
    alignment: str | None = None
    crops: str | None = None
    landmark_scale: float | None = None
    sources: dict[str, str] = field(default_factory=dict)  # field -> where it came from

    def merge(self, values: dict[str, Any], source: str, where: str) -> None:
        """Fill fields not yet set from ``values`` (a sidecar, file metadata), checking each."""
        for key, value in values.items():
            if value is None or value == "" or key not in CONTRACT_KEYS:
                continue
            if key in self.sources:
                continue
            if key == "labels":
                value = check_order(list(value), where) if isinstance(value, (list, tuple)) \
                    else parse_labels(str(value), where=where)
            elif key == "input_size":
                try:
                    value = int(value)
                except (TypeError, ValueError) as exc:
                    raise InputError(f"{where}: input_size must be an integer, not {value!r}") from exc
                if value < 8:
                    raise InputError(f"{where}: input_size {value} is too small")
            elif key == "landmark_scale":
                try:
                    value = float(value)
                except (TypeError, ValueError) as exc:
                    raise InputError(f"{where}: landmark_scale must be a number, not {value!r}") from exc
            elif key == "channels":
                value = str(value).lower()
                if value not in CHANNELS:
                    raise InputError(f"{where}: channels must be one of {', '.join(CHANNELS)}, not {value!r}")
            elif key == "input_norm":
                value = str(value).lower()
                if value not in INPUT_NORMS:
                    raise InputError(f"{where}: input_norm must be one of {', '.join(INPUT_NORMS)}, not {value!r}")
            else:
                value = str(value)
            setattr(self, key, value)
            self.sources[key] = source


def sidecar_path(model: str | os.PathLike) -> Path:
    """The JSON contract sidecar of a model file: ``<model file>.json``."""
    p = Path(model)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def read_sidecar(model: str | os.PathLike) -> dict[str, Any]:
    """The sidecar's contract fields ({} when there is none); a bad sidecar is an error naming it."""
    path = sidecar_path(model)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object with keys {', '.join(CONTRACT_KEYS)}")
    unknown = sorted(set(data) - set(CONTRACT_KEYS))
    if unknown:
        raise InputError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(CONTRACT_KEYS)})")
    return data


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
    input_norm: str = "unit"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    contract: ModelContract = field(default_factory=ModelContract)
    model_labels: list[str] | None = None  # the model's own output order

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
        x = self.model_input(faces)
        if self.kind == "torchscript":
            with torch.no_grad():
                if self.crops == "landmark":
                    raw = self.model(x, boxes.to(x.device))
                else:
                    raw = self.model(x)
            if isinstance(raw, (tuple, list)):
                raw = raw[0]
            elif hasattr(raw, "logits"):
                raw = raw.logits
            out = raw.float().cpu().numpy()
        else:
            out = self._onnx(x.cpu().numpy().astype(np.float32))
        return as_probs(out, self.model_labels or self.labels, self.path)[:, perm], None, None

    def model_input(self, faces: torch.Tensor) -> torch.Tensor:
        """Faces in [0, 1] RGB -> the model's input: on its device, in its channels and normalisation.

        Every tensor made here follows the faces' device and dtype (mean/std included), so CUDA faces
        never meet CPU constants.
        """
        x = faces.to(self.device)
        if self.contract.channels == "bgr":
            x = x.flip(1)
        if self.input_norm == "imagenet":
            mean = torch.as_tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            std = torch.as_tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            if self.contract.channels == "bgr":
                mean, std = mean.flip(1), std.flip(1)
            x = (x - mean) / std
        if self.contract.channels == "gray":
            w = torch.as_tensor((0.299, 0.587, 0.114), dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            x = (x * w).sum(1, keepdim=True)
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


def as_probs(out: np.ndarray, labels: list[str], path: Path) -> np.ndarray:
    """Model outputs (logits or probabilities) -> probabilities, checking the class count."""
    if out.ndim != 2 or out.shape[1] != len(labels):
        raise InputError(f"{path}: model output has shape {tuple(out.shape)}, expected (batch, {len(labels)}) "
                         f"for its label order {labels}")
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


def _scored_labels(model_labels: list[str]) -> list[str]:
    return [c for c in CANONICAL_LABELS if c in model_labels]


def load_predictor(
    path: str | os.PathLike,
    *,
    device: str = "auto",
    input_size: int | None = None,
    labels: str | list[str] | None = None,
    input_norm: str | None = None,
) -> Predictor:
    """Load a fercurate checkpoint, TorchScript file or ONNX model with its contract (see the module doc)."""
    from fercurate.ran.config import TrainConfig
    from fercurate.ran.model import model_from_checkpoint

    path = Path(path)
    kind = model_kind(path)
    dev = pick_device(device)
    if input_norm is not None and input_norm not in INPUT_NORMS:
        raise InputError(f"--input-norm must be one of {', '.join(INPUT_NORMS)}")
    contract = ModelContract()
    given = {"labels": parse_labels(labels) if labels is not None else None, "input_size": input_size,
             "input_norm": input_norm}
    contract.merge(given, "command line", "--labels")
    if kind == "checkpoint":
        state = load_checkpoint(path)
        own = check_order(list(state["labels"]), str(path))
        if contract.labels is not None and contract.labels != own:
            raise InputError(f"{path}: --labels {contract.labels} differ from the checkpoint's label map {own}; "
                             f"a checkpoint carries its own order, drop --labels")
        model = model_from_checkpoint(state).to(dev).eval()
        cfg = TrainConfig(**state["config"]).resolved()
        mp = Path(state["manifest"]["path"]) if state.get("manifest") else None
        contract.labels = own
        contract.sources["labels"] = "checkpoint"
        return Predictor(kind, path, _scored_labels(own), cfg.input_size, model, cfg, mp, device=dev,
                         contract=contract, model_labels=own)
    sidecar = sidecar_path(path)
    contract.merge(read_sidecar(path), f"sidecar {sidecar.name}", str(sidecar))
    if kind == "torchscript":
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
        if text["labels.txt"].strip():
            stored["labels"] = [s.strip() for s in text["labels.txt"].splitlines() if s.strip()]
        if text["input_size.txt"].strip():
            stored["input_size"] = text["input_size.txt"].strip()
        contract.merge(stored, "TorchScript extra files", f"{path} (extra files)")
        session: Any = model
    else:
        try:
            import onnxruntime as ort  # type: ignore[import-not-found]
        except ImportError as exc:
            raise InputError(f"{path}: scoring ONNX models needs the optional onnxruntime package "
                             f"(pip install 'fercurate[onnx]' or pip install onnxruntime)") from exc
        try:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - a bad user file
            raise InputError(f"{path}: cannot load as an ONNX model ({exc})") from exc
        meta = session.get_modelmeta().custom_metadata_map or {}
        contract.merge({k[len(ONNX_PREFIX):]: v for k, v in meta.items() if k.startswith(ONNX_PREFIX)},
                       "ONNX metadata_props", f"{path} (metadata_props)")
        shape = session.get_inputs()[0].shape
        if isinstance(shape[-1], int):
            contract.merge({"input_size": shape[-1]}, "ONNX input shape", str(path))
        channels = shape[1] if len(shape) == 4 else None
        if isinstance(channels, int) and (channels == 1) != (contract.channels == "gray"):
            raise InputError(f"{path}: the model takes {channels} input channel(s) but its contract says "
                             f"channels={contract.channels}; set channels in the sidecar {sidecar.name}")
        dev = torch.device("cpu")
    if contract.labels is None:
        raise InputError(f"{path}: the model does not say in which order its outputs are; "
                         + HOW_TO_GIVE_LABELS.format(sidecar=sidecar.name))
    size = contract.input_size or 224
    return Predictor(kind, path, _scored_labels(contract.labels), int(size), session,
                     input_norm=contract.input_norm, device=dev, contract=contract, model_labels=contract.labels)


def describe(predictor: Predictor) -> str:
    """One line: the label order a model's outputs were read in and where that came from."""
    names = predictor.model_labels or predictor.labels
    known = order_name(names)
    order = f"{known} order" if known else ",".join(names)
    src = predictor.contract.sources.get("labels", "checkpoint")
    moved = "" if known in ("canonical", "canonical7") else ", permuted to canonical"
    return (f"outputs read in {order} ({len(names)} classes, from {src}){moved}; "
            f"input {predictor.input_size}px {predictor.contract.channels}, {predictor.input_norm} values"
            + (f", alignment {predictor.contract.alignment}" if predictor.contract.alignment else ""))


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
