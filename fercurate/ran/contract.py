"""A TorchScript or ONNX model's contract: how to feed it and read its outputs, each value with its source.

The keys (:data:`CONTRACT_KEYS`) are the same everywhere a contract can be written:

* ``labels``: the class of each output column, in the model's order (a named order of
  :mod:`fercurate.labels`, a names file, or a list; 8 classes, or 7 without contempt);
* ``input_size``: H = W of the input in pixels;
* ``channels``: ``gray`` (one channel), ``rgb`` or ``bgr``;
* ``layout``: ``nchw`` (PyTorch) or ``nhwc`` (channels last: Keras, tf2onnx's default);
* ``input_norm``: ``unit`` (values in [0, 1]), ``signed`` (x/127.5 - 1, i.e. [-1, 1]), ``imagenet``
  (ImageNet mean/std) or ``mean=M,std=S`` (on [0, 1] values, one number or one per channel in the
  model's channel order);
* ``outputs``: ``logits`` (softmax gives the probabilities), ``probabilities`` (rows summing to 1) or
  ``sigmoid`` (an independent score in [0, 1] per class; normalised to sum to 1);
* ``alignment``, ``crops``, ``landmark_scale``: how fercurate's own TorchScript exports cut faces.

They are given on the command line (``--labels``, ``--input-size``, ...), in a JSON sidecar next to
the model named ``<model file>.json``, or inside the file: ONNX ``metadata_props`` ``fercurate.<key>``
(``fercurate.labels`` a comma list or an order name), TorchScript extra files ``contract.json`` (the
keys above), ``labels.txt`` (one name per line) and ``input_size.txt``.

:func:`resolve` puts them together, and nothing is guessed:

* two places giving different values is refused, naming both; ``override`` lets the command line's
  value replace a stored one (and says so);
* what the model's own input shape fixes (ONNX: the size, one channel = gray, where the channels sit;
  TorchScript: what trial runs of a zero batch accept) is filled in with that source, and a stated
  value against it is refused before any face is scored (:func:`apply_input_shape`,
  :func:`apply_trials`);
* a value of :data:`REQUIRED` that nothing gives is an error listing every way to give it
  (:func:`require_complete`).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fercurate.errors import InputError
from fercurate.labels import check_order, order_name, parse_labels
from fercurate.ran.config import CHANNELS, LAYOUTS, OUTPUT_KINDS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# fercurate.ran.config.INPUT_NORMS -> (mean, std) on [0, 1] values
NAMED_NORMS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "unit": ((0.0,), (1.0,)),
    "signed": ((0.5,), (0.5,)),  # (x/255 - 0.5) / 0.5 = x/127.5 - 1
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
}
CONTRACT_KEYS = ("labels", "input_size", "channels", "layout", "input_norm", "outputs", "alignment", "crops",
                 "landmark_scale")
REQUIRED = ("labels", "input_size", "channels", "layout", "input_norm", "outputs")
SIDECAR_SUFFIX = ".json"
ONNX_PREFIX = "fercurate."
COMMAND_LINE = "command line"
CHANNEL_DIM = {"nchw": 1, "nhwc": 3}

# key -> (what it says, command-line form, a sidecar example)
_HOW = {
    "labels": ("in which order its outputs are", "--labels ORDER (one of canonical, canonical7, affectnet, fer2013, "
               "ferplus, rafdb, sfew), --labels names.txt (one class name per line) or --labels a,b,c", '"labels": [...]'),
    "input_size": ("its input size", "--input-size N", '"input_size": 224'),
    "channels": ("which channels it takes", "--channels gray|rgb|bgr", '"channels": "rgb"'),
    "layout": ("where the channels sit in its input", "--layout nchw|nhwc", '"layout": "nchw"'),
    "input_norm": ("how its input values are scaled", "--input-norm unit|signed|imagenet|mean=M,std=S",
                   '"input_norm": "imagenet"'),
    "outputs": ("what its outputs are", "--outputs logits|probabilities|sigmoid", '"outputs": "logits"'),
}
_FLAGS = {"labels": "--labels", "input_size": "--input-size", "channels": "--channels", "layout": "--layout",
          "input_norm": "--input-norm", "outputs": "--outputs"}


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


# --- values ------------------------------------------------------------------------------------------------


def _numbers(text: str, what: str, where: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise InputError(f"{where}: input_norm {what} must be numbers, not {text!r}") from exc
    if len(values) not in (1, 3) or not all(math.isfinite(v) for v in values):
        raise InputError(f"{where}: input_norm {what} takes one number or three (one per channel), got {text!r}")
    return values


def parse_input_norm(value: Any, where: str) -> str:
    """``unit`` | ``signed`` | ``imagenet`` | ``mean=M,std=S`` (or a sidecar's {"mean": [...], "std": [...]})
    -> the canonical text, checked."""
    if isinstance(value, dict):
        if set(value) != {"mean", "std"}:
            raise InputError(f"{where}: input_norm as an object needs exactly the keys mean and std")
        value = "mean=" + ",".join(map(str, _as_list(value["mean"]))) + ",std=" + ",".join(map(str, _as_list(value["std"])))
    text = str(value).strip().lower().replace(" ", "")
    if text in NAMED_NORMS:
        return text
    m = re.fullmatch(r"mean=([^=;]+?)[,;]std=([^=;]+)", text)
    if not m:
        raise InputError(f"{where}: input_norm must be unit, signed (x/127.5 - 1), imagenet or mean=M,std=S "
                         f"(e.g. mean=0.5,std=0.5), not {value!r}")
    mean, std = _numbers(m.group(1), "mean", where), _numbers(m.group(2), "std", where)
    if any(s <= 0 for s in std):
        raise InputError(f"{where}: input_norm std must be positive, got {m.group(2)!r}")
    return "mean=" + ",".join(f"{v:g}" for v in mean) + ",std=" + ",".join(f"{v:g}" for v in std)


def _as_list(v: Any) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def norm_values(spec: str, channels: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of an input_norm, in the model's channel order (ImageNet's RGB statistics flip for bgr)."""
    if spec in NAMED_NORMS:
        mean, std = NAMED_NORMS[spec]
        if spec == "imagenet" and channels == "bgr":
            mean, std = mean[::-1], std[::-1]
        return mean, std
    m = re.fullmatch(r"mean=(.+),std=(.+)", spec)
    assert m, spec
    first, second = m.group(1).split(","), m.group(2).split(",")
    return tuple(map(float, first)), tuple(map(float, second))


def check_value(key: str, value: Any, where: str) -> Any:
    """One contract value, checked and in its canonical form (InputError naming ``where`` if not valid)."""
    if key == "labels":
        return check_order(list(value), where) if isinstance(value, (list, tuple)) else parse_labels(str(value), where=where)
    if key == "input_size":
        try:
            size = int(value)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}: input_size must be an integer, not {value!r}") from exc
        if size < 8:
            raise InputError(f"{where}: input_size {size} is too small")
        return size
    if key == "landmark_scale":
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}: landmark_scale must be a number, not {value!r}") from exc
    if key == "input_norm":
        return parse_input_norm(value, where)
    choices = {"channels": CHANNELS, "layout": LAYOUTS, "outputs": OUTPUT_KINDS}.get(key)
    if choices:
        text = str(value).strip().lower()
        if text not in choices:
            raise InputError(f"{where}: {key} must be one of {', '.join(choices)}, not {value!r}")
        return text
    return str(value)


def checked(values: dict[str, Any], where: str) -> dict[str, Any]:
    """The contract keys of ``values`` (a sidecar, file metadata, the command line) checked; None/"" dropped."""
    return {k: check_value(k, v, where) for k, v in values.items() if k in CONTRACT_KEYS and v not in (None, "")}


def show(key: str, value: Any) -> str:
    """A contract value as messages print it (a label order by name with its classes)."""
    if key == "labels":
        name = order_name(value)
        return f"{name} ({', '.join(value)})" if name else ",".join(value)
    if key == "input_norm" and value == "signed":
        return "signed (x/127.5 - 1)"
    return str(value)


# --- the contract ------------------------------------------------------------------------------------------


@dataclass
class ModelContract:
    """How to feed a model and read its outputs (see the module doc); ``sources`` says where each value came from."""

    labels: list[str] | None = None  # model output order, canonical names
    input_size: int | None = None
    channels: str | None = None
    layout: str | None = None
    input_norm: str | None = None
    outputs: str | None = None
    alignment: str | None = None
    crops: str | None = None
    landmark_scale: float | None = None
    sources: dict[str, str] = field(default_factory=dict)  # key -> where it came from
    notes: list[str] = field(default_factory=list)  # overrides, said in the output
    hints: dict[str, str] = field(default_factory=dict)  # key -> why the model could not fix it

    def set(self, key: str, value: Any, source: str) -> None:
        setattr(self, key, value)
        self.sources[key] = source

    def merge(self, values: dict[str, Any], source: str, where: str) -> None:
        """Fill keys not yet set from ``values`` (checked), recording ``source``."""
        for key, value in checked(values, where).items():
            if key not in self.sources:
                self.set(key, value, source)

    def missing(self) -> list[str]:
        return [k for k in REQUIRED if getattr(self, k) is None]

    def norm(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) applied to [0, 1] values, in the model's channel order."""
        return norm_values(self.input_norm or "unit", self.channels or "rgb")

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """Each value given, with its source (``metrics.json``'s ``contract``)."""
        return {k: {"value": getattr(self, k), "source": self.sources[k]} for k in CONTRACT_KEYS if k in self.sources}

    def describe(self) -> str:
        """One line: every value with where it came from."""
        parts = []
        for key in ("input_size", "channels", "layout", "input_norm", "outputs", "alignment"):
            if key in self.sources:
                value = f"{self.input_size} px" if key == "input_size" else show(key, getattr(self, key))
                label = "" if key in ("input_size", "channels") else f"{key} "
                parts.append(f"{label}{value} ({self.sources[key]})")
        return "; ".join(parts)


def resolve(path: Path, layers: Sequence[tuple[str, dict[str, Any]]], *, override: bool = False) -> ModelContract:
    """A contract from checked ``layers`` [(source, values)], most authoritative first (the command line).

    A key given differently by two layers is refused, naming both; with ``override`` a command-line
    value replaces the others (noted in ``notes``).
    """
    contract = ModelContract()
    for key in CONTRACT_KEYS:
        given = [(source, values[key]) for source, values in layers if values.get(key) is not None]
        if not given:
            continue
        (first_source, first), rest = given[0], given[1:]
        for source, value in rest:
            if value == first:
                continue
            if override and first_source == COMMAND_LINE:
                contract.notes.append(f"{_FLAGS.get(key, key)} {show(key, first)} replaces {show(key, value)} "
                                      f"({source}): --override-contract")
                continue
            if first_source == COMMAND_LINE:
                raise InputError(f"{path}: {_FLAGS.get(key, key)} {show(key, first)} contradicts {key} "
                                 f"{show(key, value)} stored with the model ({source}); drop {_FLAGS.get(key, key)} "
                                 f"to use the stored value, or pass --override-contract to score with the "
                                 f"command line's")
            raise InputError(f"{path}: {key} is {show(key, first)} in the {first_source} but {show(key, value)} in "
                             f"the {source}; make them agree, or give {_FLAGS.get(key, key)} on the command line "
                             f"with --override-contract")
        contract.set(key, first, first_source)
    return contract


def _shape_text(shape: Sequence[Any]) -> str:
    return "[" + ", ".join(str(d) if isinstance(d, int) and d > 0 else (str(d) if d else "?") for d in shape) + "]"


def apply_input_shape(contract: ModelContract, shape: Sequence[Any], path: Path) -> None:
    """Check the contract against an ONNX model's declared input shape; fill in what the shape fixes.

    The shape fixes the layout where exactly one of its dims 1 and 3 is a channel count (1 or 3), one
    channel means gray, and fixed height/width give the input size. Any stated value against the
    shape is refused here, before a face is scored.
    """
    dims = [d if isinstance(d, int) and d > 0 else None for d in shape]
    src = f"ONNX input shape {_shape_text(shape)}"
    if len(dims) != 4:
        raise InputError(f"{path}: its input has shape {_shape_text(shape)}; fercurate feeds images, shaped (batch, "
                         f"channels, height, width) or (batch, height, width, channels)")
    plausible = [layout for layout, dim in CHANNEL_DIM.items() if dims[dim] in (1, 3)]
    if contract.layout is None:
        if len(plausible) == 1:
            contract.set("layout", plausible[0], f"inferred from the {src}")
        else:
            contract.hints["layout"] = f"the {src} does not tell nchw from nhwc"
            return
    else:
        dim = dims[CHANNEL_DIM[contract.layout]]
        if dim is not None and dim not in (1, 3):
            other = [p for p in plausible if p != contract.layout]
            raise InputError(f"{path}: --layout {contract.layout} ({contract.sources['layout']}) puts the channels at "
                             f"dim {CHANNEL_DIM[contract.layout]}, which is {dim} in the model's {src}"
                             + (f"; the shape says {other[0]}" if other else ""))
    nchw = contract.layout == "nchw"
    n_channels = dims[1] if nchw else dims[3]
    height, width = (dims[2], dims[3]) if nchw else (dims[1], dims[2])
    if n_channels is not None:
        stated = None if contract.channels is None else (1 if contract.channels == "gray" else 3)
        if stated is not None and stated != n_channels:
            raise InputError(f"{path}: the model takes {n_channels} channel(s) ({src}, layout {contract.layout}) but "
                             f"channels is {contract.channels} ({contract.sources['channels']}); "
                             + ("give --channels gray" if n_channels == 1 else "give --channels rgb or bgr"))
        if n_channels == 1 and contract.channels is None:
            contract.set("channels", "gray", src)
        elif n_channels == 3 and contract.channels is None:
            contract.hints["channels"] = f"rgb or bgr: it takes 3 channels, {src}"
    if height is not None and width is not None and height != width:
        raise InputError(f"{path}: the model takes {height}x{width} inputs ({src}); fercurate feeds square faces")
    fixed = height or width
    if fixed is None:
        contract.hints["input_size"] = f"the model accepts any size, {src}"
        return
    if contract.input_size is not None and contract.input_size != fixed:
        raise InputError(f"{path}: input size {contract.input_size} ({contract.sources['input_size']}) but the model "
                         f"takes {fixed}x{fixed} inputs ({src}); drop --input-size or give {fixed}")
    if contract.input_size is None:
        contract.set("input_size", fixed, src)


def check_output_shape(contract: ModelContract, shape: Sequence[Any], path: Path) -> None:
    """An ONNX model's declared output width must match its label order's class count."""
    width = shape[-1] if shape else None
    if contract.labels is not None and isinstance(width, int) and width > 0 and width != len(contract.labels):
        raise InputError(f"{path}: the model has {width} outputs (ONNX output shape {_shape_text(shape)}) but its label "
                         f"order names {len(contract.labels)} classes ({show('labels', contract.labels)}, "
                         f"{contract.sources['labels']})")


def apply_trials(contract: ModelContract, trial: Callable[[str, int, int], str | None], path: Path) -> None:
    """For a model that declares no input shape (TorchScript): run a zero batch in each layout and channel
    count the contract leaves open; what alone runs is filled in (source: trial runs), nothing runs is an error.

    ``trial(layout, n_channels, size)`` returns None when the model accepts that input, else its error.
    """
    if contract.input_size is None:
        contract.hints.setdefault("input_size", "a TorchScript file declares no input shape")
        return
    layouts = [contract.layout] if contract.layout else list(LAYOUTS)
    counts = [1] if contract.channels == "gray" else [3] if contract.channels else [1, 3]
    size = contract.input_size
    results = {(lay, c): trial(lay, c, size) for lay in layouts for c in counts}
    working = [k for k, err in results.items() if err is None]
    if not working:
        (lay, c), err = next(iter(results.items()))
        tried = ", ".join(_trial_shape(lay, c, size) for lay, c in results)
        raise InputError(f"{path}: no input in the contract's shape runs through the model (tried {tried}): {err}")
    src = "trial runs of the TorchScript model: " + " and ".join(_trial_shape(lay, c, size) for lay, c in working) + " run"
    if contract.layout is None:
        found = {lay for lay, _ in working}
        if len(found) == 1:
            contract.set("layout", found.pop(), src)
        else:
            contract.hints["layout"] = "inputs in both layouts run through it"
    if contract.channels is None:
        found_c = {c for lay, c in working if contract.layout in (None, lay)}
        if found_c == {1}:
            contract.set("channels", "gray", src)
        else:
            contract.hints["channels"] = "it runs on 3-channel input: rgb or bgr" if found_c == {3} else \
                "it runs on 1- and 3-channel input"


def _trial_shape(layout: str, n_channels: int, size: int) -> str:
    return f"(1, {n_channels}, {size}, {size})" if layout == "nchw" else f"(1, {size}, {size}, {n_channels})"


def check_norm_channels(contract: ModelContract, path: Path) -> None:
    """An input_norm's per-channel values must match the channel count (imagenet needs 3 channels)."""
    if contract.input_norm is None or contract.channels is None:
        return
    n = 1 if contract.channels == "gray" else 3
    mean, std = contract.norm()
    if len(mean) not in (1, n) or len(std) not in (1, n):
        raise InputError(f"{path}: input_norm {contract.input_norm} ({contract.sources['input_norm']}) has "
                         f"{max(len(mean), len(std))} values per channel but the model takes {n} channel(s) "
                         f"({contract.channels}, {contract.sources['channels']}); give one value per channel "
                         f"(--input-norm mean=M,std=S)")


def require_complete(contract: ModelContract, path: Path, kind: str) -> None:
    """Refuse a contract missing a :data:`REQUIRED` value, listing every way to give each missing one."""
    missing = contract.missing()
    if not missing:
        return
    said = "; ".join(_HOW[k][0] + f" ({k}" + (f": {contract.hints[k]}" if k in contract.hints else "") + ")"
                     for k in missing)
    inside = ("ONNX metadata_props " + ", ".join(ONNX_PREFIX + k for k in missing) if kind == "onnx" else
              "TorchScript extra file contract.json with those keys" + (" or labels.txt" if "labels" in missing else ""))
    raise InputError(f"{path}: the model does not say {said}. fercurate scores nothing on a guess: give "
                     + "; ".join(_HOW[k][1] for k in missing)
                     + f"; or write a sidecar '{sidecar_path(path).name}' such as {{{', '.join(_HOW[k][2] for k in missing)}}}"
                     + f"; or store them in the file ({inside})")
