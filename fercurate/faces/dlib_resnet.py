"""dlib's face-recognition ResNet in PyTorch, with its weights read from dlib's own ``.dat`` file.

The network is the one of dlib's ``examples/dnn_face_recognition_ex.cpp`` (``anet_type``): 29
convolutions (a ResNet-34 with layers removed and half the filters), 150x150 RGB in, a 128-D metric
descriptor out. ``face_recognition_models`` ships the trained file (see ``NOTICE-dlib`` here)::

    from fercurate.faces.dlib_resnet import descriptor_model
    net = descriptor_model()                     # finds the .dat; converts once, then loads a cache
    d = net(chips)                               # (N, 3, 150, 150) float RGB 0-255 -> (N, 128)
    f = net.features(chips)                      # (N, 256): the pooled features before the fc

``d`` equals ``dlib.face_recognition_model_v1(path).compute_face_descriptor(chip)`` on the uint8
chips (``dlib.get_face_chip(img, shape, size=150, padding=0.25)``) to float rounding.

**The file.** dlib serialises a network from the loss layer inwards: each wrapper writes its
version number, then its sub-network, then its own layer. So the file is the loss layer, then one
version number per layer from the output to the input (130 here), then the input layer, then every
layer's parameters from the input back out to the output. Integers are dlib's compact form (a
control byte: sign in bit 7, byte count in bits 0-3; then that many little-endian bytes), scalars
are ``(mantissa, exponent)`` integer pairs, strings are a length and bytes, and tensors are four
dimensions followed by little-endian float32 values. Tag and skip layers only write a version
number (their ids belong to the C++ type), so the parsed list shows them as ``tag/skip``.
:func:`read_dat` parses any file made of the layer kinds below; :func:`check_architecture`
compares the result with ``anet_type`` layer by layer.

**Semantics, read off dlib's CPU code.** Input: ``(pixel - mean) / 256`` per channel, the means
stored in the file (R 122.782, G 117.001, B 104.298). Convolutions pad only when their stride is 1
(3x3/1: one pixel; the 7x7/2 stem and the 3x3/2 down-sampling convolutions: none), as do the pools
(3x3/2 max, 2x2/2 average). ``affine`` is a per-channel ``scale * x + shift`` (batch-norm folded at
the end of training). ``add_prev`` adds two tensors of different shapes over the larger shape,
zero-filling the missing channels, bottom rows and right columns of the smaller one: the
down-sampling blocks rely on it twice (32 channels into 64 at ``layer2``; at 150 px ``layer4``'s
3x3 block output meets the 4x4 average-pooled shortcut).

**Other input sizes.** The network is convolutional up to the global average pool, so any size
from :data:`NATIVE_MIN_INPUT` (103) px up runs with exactly dlib's arithmetic (112 px: 1x1 before
the pool). Below that the last down-sampling stage meets a map smaller than its 3x3 kernel, which
dlib itself never does (its input layer takes 150x150 only); there the port zero-pads that map
around to 3x3 for the convolution and lets the shortcut's 2x2 average shrink to the map (so a
1x1 map passes through as is), as dlib's pooling already clips windows at edges. Every parameter
still takes part, down to :data:`MIN_INPUT` (11) px. Descriptors at other sizes are not dlib's:
these sizes are for fine-tuning ``features``.

Long because the format reader, the layer-by-layer check against dlib's network type, the network
and the cache belong together: each check names the layers the others build.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fercurate.atomic import StorageError, atomic_path
from fercurate.errors import InputError

MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
INPUT_SIZE = 150  # dlib's input_rgb_image_sized<150>
FEATURE_DIM = 256  # pooled features before the fc (``features(x)``)
DESCRIPTOR_DIM = 128
NATIVE_MIN_INPUT = 103  # smallest input on which every layer runs as in dlib (see the module docstring)
MIN_INPUT = 11  # smallest input the port accepts (7x7/2 stem, then the 3x3/2 max-pool)
STAGES = ("stem", "layer1", "layer2", "layer3", "layer4", "layer5")  # what --freeze could hold fixed
CACHE_FORMAT = 1  # bump when the cached state dict changes meaning

# The stages after the stem: (our name, dlib's name, channels, starts with a down-sampling block,
# plain residual blocks after it). dlib nests them output-first: alevel0<alevel1<...<alevel4<stem>>>>.
LEVELS = (
    ("layer1", "alevel4", 32, False, 3),
    ("layer2", "alevel3", 64, True, 3),
    ("layer3", "alevel2", 128, True, 2),
    ("layer4", "alevel1", 256, True, 2),
    ("layer5", "alevel0", 256, True, 0),
)


class DlibFormatError(InputError):
    """A file that is not dlib's face-recognition network (or is truncated): names the file and what differs."""


# --- dlib's serialisation format --------------------------------------------------------------------


class _Reader:
    """Sequential reader of dlib's binary serialisation (``dlib/serialize.h``) over a file's bytes."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = memoryview(data)
        self.path = path
        self.pos = 0

    def error(self, what: str, at: int | None = None) -> DlibFormatError:
        return DlibFormatError(f"{self.path}: byte {self.pos if at is None else at}: {what}")

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise self.error(f"the file ends (at {len(self.data)} bytes) inside {what}: truncated, "
                             "or not a dlib network file")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def int_(self, what: str) -> int:
        """dlib's compact integer: a control byte (bit 7 sign, bits 0-3 byte count), then the bytes."""
        start = self.pos
        control = self.take(1, what)[0]
        size = control & 0x0F
        if control & 0x70 or not 1 <= size <= 8:  # the three reserved bits are always 0
            raise self.error(f"expected {what} (a dlib integer), found byte 0x{control:02x}: "
                             "not a dlib network file", start)
        value = int.from_bytes(self.take(size, what), "little")
        return -value if control & 0x80 else value

    def uint(self, what: str) -> int:
        start = self.pos
        value = self.int_(what)
        if value < 0:
            raise self.error(f"expected {what} (unsigned), found {value}", start)
        return value

    def peek_int(self) -> int | None:
        start = self.pos
        try:
            return self.int_("")
        except DlibFormatError:
            return None
        finally:
            self.pos = start

    def real(self, what: str) -> float:
        """A float or double: the integers ``mantissa`` and ``exponent``, value ``mantissa * 2**exponent``."""
        mantissa = self.int_(f"{what} (mantissa)")
        exponent = self.int_(f"{what} (exponent)")
        special = {32000: math.inf, 32001: -math.inf, 32002: math.nan}  # float_details' markers
        return special[exponent] if exponent in special else math.ldexp(mantissa, exponent)

    def bool_(self, what: str) -> bool:
        ch = self.take(1, what)[0]
        if ch not in b"01":
            raise self.error(f"expected {what} (a bool: '0' or '1'), found byte 0x{ch:02x}", self.pos - 1)
        return ch == ord("1")

    def string(self, what: str, limit: int = 256) -> str:
        start = self.pos
        n = self.uint(f"the length of {what}")
        if n > limit:
            raise self.error(f"expected {what}, found a string length of {n}: not a dlib network file", start)
        raw = bytes(self.take(n, what))
        if not all(32 <= b < 127 for b in raw):
            raise self.error(f"expected {what}, found bytes {raw[:24]!r}: not a dlib network file", start)
        return raw.decode("ascii")

    def shape(self, what: str) -> tuple[int, int, int, int]:
        return tuple(self.int_(f"{what} dimension") for _ in range(4))  # type: ignore[return-value]

    def tensor(self, what: str) -> np.ndarray:
        """A ``resizable_tensor``: version 2, four dimensions, then float32 values (little endian)."""
        start = self.pos
        if (v := self.int_(f"{what} version")) != 2:
            raise self.error(f"{what}: tensor version {v}, expected 2", start)
        shape = self.shape(what)
        if any(d < 0 for d in shape) or math.prod(shape) > len(self.data):
            raise self.error(f"{what}: impossible tensor shape {shape}", start)
        raw = self.take(4 * math.prod(shape), f"{what} ({'x'.join(map(str, shape))} floats)")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias(self, what: str) -> tuple[int, int, int, int]:
        """An ``alias_tensor``: version 1 and four dimensions (a view into the layer's ``params``)."""
        start = self.pos
        if (v := self.int_(f"{what} version")) != 1:
            raise self.error(f"{what}: alias_tensor version {v}, expected 1", start)
        return self.shape(what)


@dataclass
class DlibLayer:
    """One layer as the file holds it: ``kind`` (``con``, ``affine``, ``relu``, ``max_pool``,
    ``avg_pool``, ``add_prev``, ``fc``, ``tag/skip``, ``input_rgb_image_sized``, ``loss_metric``),
    the version string dlib wrote (``con_4``, ...), its settings and its parameters (float32)."""

    kind: str
    version: str = ""
    attrs: dict[str, int | float | bool] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    offset: int = 0  # byte where the layer's own record starts

    def describe(self) -> str:
        a = self.attrs
        if self.kind == "con":
            s = (f"con {a['num_filters']} {a['nr']}x{a['nc']}/{a['stride_y']}"
                 + (f",{a['stride_x']}" if a["stride_x"] != a["stride_y"] else "")
                 + f" pad {a['padding_y']},{a['padding_x']}")
            return s + (" +relu" if a.get("use_relu") else "") + ("" if a.get("use_bias", True) else " no-bias")
        if self.kind in ("max_pool", "avg_pool"):
            size = "everything" if a["nr"] == 0 else f"{a['nr']}x{a['nc']}/{a['stride_y']}"
            return f"{self.kind} {size} pad {a['padding_y']},{a['padding_x']}"
        if self.kind == "fc":
            return f"fc {a['num_inputs']}->{a['num_outputs']}" + ("" if a["has_bias"] else " no-bias")
        if self.kind == "affine":
            return "affine" + (" (fc mode)" if a.get("mode") == 1 else "") + (" disabled" if a.get("disabled") else "")
        if self.kind == "relu":
            return "relu" + (" disabled" if a.get("disabled") else "")
        if self.kind == "input_rgb_image_sized":
            return f"input_rgb_image_sized {a['nr']}x{a['nc']}"
        return self.kind


@dataclass
class DlibNetwork:
    """A parsed ``.dat``: ``layers`` in forward order (the input first, the loss last)."""

    path: Path
    layers: list[DlibLayer]
    sha256: str

    @property
    def input(self) -> DlibLayer:
        return self.layers[0]

    def with_params(self) -> list[DlibLayer]:
        return [layer for layer in self.layers if layer.params]


def _read_input(r: _Reader) -> DlibLayer:
    at = r.pos
    name = r.string("the input layer's name")
    if name != "input_rgb_image_sized":
        raise r.error(f"input layer {name!r}, expected 'input_rgb_image_sized'", at)
    mean = [r.real(f"the {c} average") for c in ("red", "green", "blue")]
    nr, nc = r.uint("the input rows"), r.uint("the input columns")
    attrs = {"nr": nr, "nc": nc, "avg_red": mean[0], "avg_green": mean[1], "avg_blue": mean[2]}
    return DlibLayer("input_rgb_image_sized", name, attrs, {"mean": np.array(mean, np.float32)}, at)


def _read_con(r: _Reader, at: int, version: str) -> DlibLayer:
    params = r.tensor("con params").reshape(-1)
    a: dict = {"num_filters": r.int_("con num_filters"), "nr": r.int_("con nr"), "nc": r.int_("con nc"),
               "stride_y": r.int_("con stride_y"), "stride_x": r.int_("con stride_x"),
               "padding_y": r.int_("con padding_y"), "padding_x": r.int_("con padding_x")}
    filters, biases = r.alias("con filters"), r.alias("con biases")
    for m in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
        a[f"{m}_multiplier"] = r.real(f"con {m} multiplier")
    a["use_bias"] = r.bool_("con use_bias") if version in ("con_5", "con_6") else True
    a["use_relu"] = r.bool_("con use_relu") if version == "con_6" else False
    n_w, n_b = math.prod(filters), (a["num_filters"] if a["use_bias"] else 0)
    if filters[0] != a["num_filters"] or params.size != n_w + n_b or (n_b and math.prod(biases) != n_b):
        raise r.error(f"con: {params.size} parameters do not fit filters {filters} and biases {biases}", at)
    p = {"weight": params[:n_w].reshape(filters)}
    if n_b:
        p["bias"] = params[n_w:]
    return DlibLayer("con", version, a, p, at)


def _read_fc(r: _Reader, at: int, version: str) -> DlibLayer:
    a: dict = {"num_outputs": r.uint("fc num_outputs"), "num_inputs": r.uint("fc num_inputs")}
    params = r.tensor("fc params")
    weights, _biases = r.alias("fc weights"), r.alias("fc biases")
    a["bias_mode"] = r.int_("fc bias mode")  # 0: FC_HAS_BIAS, 1: FC_NO_BIAS
    for m in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
        a[f"{m}_multiplier"] = r.real(f"fc {m} multiplier")
    use_bias = r.bool_("fc use_bias") if version == "fc_3" else True
    a["has_bias"] = a["bias_mode"] == 0 and use_bias
    n_in, n_out = a["num_inputs"], a["num_outputs"]
    flat = params.reshape(-1)
    if weights[:2] != (n_in, n_out) or flat.size != n_in * n_out + (n_out if a["has_bias"] else 0):
        raise r.error(f"fc: parameters {params.shape} do not fit {n_in} inputs x {n_out} outputs", at)
    # dlib computes output = input (N x in) @ W (in x out); torch's Linear holds W transposed.
    p = {"weight": np.ascontiguousarray(flat[: n_in * n_out].reshape(n_in, n_out).T)}
    if a["has_bias"]:
        p["bias"] = flat[n_in * n_out :]
    return DlibLayer("fc", version, a, p, at)


def _read_affine(r: _Reader, at: int, version: str) -> DlibLayer:
    params = r.tensor("affine params").reshape(-1)
    gamma, beta = r.alias("affine gamma"), r.alias("affine beta")
    a: dict = {"mode": r.int_("affine mode")}  # 0: CONV_MODE (per channel), 1: FC_MODE (per element)
    a["disabled"] = r.bool_("affine disabled") if version == "affine_2" else False
    ng, nb = math.prod(gamma), math.prod(beta)
    if params.size != ng + nb:
        raise r.error(f"affine: {params.size} parameters do not fit gamma {gamma} and beta {beta}", at)
    return DlibLayer("affine", version, a, {"scale": params[:ng], "shift": params[ng:]} if ng else {}, at)


def _read_pool(r: _Reader, at: int, version: str) -> DlibLayer:
    a = {"nr": r.int_("pool nr"), "nc": r.int_("pool nc"), "stride_y": r.int_("pool stride_y"),
         "stride_x": r.int_("pool stride_x"), "padding_y": r.int_("pool padding_y"),
         "padding_x": r.int_("pool padding_x")}
    return DlibLayer(version[: -len("_2")], version, a, {}, at)


def _read_layer(r: _Reader) -> DlibLayer:
    at = r.pos
    version = r.string("a layer's name")
    if version in ("con_4", "con_5", "con_6"):
        return _read_con(r, at, version)
    if version in ("fc_2", "fc_3"):
        return _read_fc(r, at, version)
    if version in ("affine_", "affine_2"):
        return _read_affine(r, at, version)
    if version in ("max_pool_2", "avg_pool_2"):
        return _read_pool(r, at, version)
    if version in ("relu_", "relu_2"):
        return DlibLayer("relu", version, {"disabled": version == "relu_2" and r.bool_("relu disabled")}, {}, at)
    if version == "add_prev_":
        return DlibLayer("add_prev", version, {}, {}, at)
    raise r.error(f"layer {version!r} is not one this reader knows (con_4-6, fc_2-3, affine_, affine_2, "
                  "relu_, relu_2, max_pool_2, avg_pool_2, add_prev_)", at)


def _skip_layer_state(r: _Reader, version: int, over_input: bool) -> None:
    """What ``add_layer`` writes after its layer: training flags and (normally empty) buffers."""
    for flag in ("this_layer_setup_called", "gradient_input_is_stale", "get_output_and_gradient_input_disabled"):
        r.bool_(f"add_layer {flag}")
    r.tensor("add_layer x_grad")
    r.tensor("add_layer cached_output")
    if over_input:
        r.tensor("add_layer grad_final")
        if version >= 3:
            r.uint("add_layer sample_expansion_factor")
    elif version >= 2:
        r.tensor("add_layer params_grad")


def read_dat(path: str | os.PathLike, data: bytes | None = None) -> DlibNetwork:
    """Parse a dlib network file (``serialize(net)``) into its layers, each with float32 parameters.

    Raises :class:`DlibFormatError` naming the file and byte for anything else: a truncated file, a
    compressed one, another kind of dlib file, an unknown layer. Does not check the architecture
    (see :func:`check_architecture`).
    """
    path = Path(path)
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DlibFormatError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if data[:3] == b"BZh":
        raise DlibFormatError(f"{path}: bzip2-compressed (as dlib.net serves it): decompress it first")
    r = _Reader(data, path)
    if (v := r.int_("the loss layer's version")) != 1:
        raise r.error(f"starts with {v}, not a dlib add_loss_layer (version 1): not a dlib network file", 0)
    at = r.pos
    name = r.string("the loss layer's name")
    if name == "loss_metric_2":
        loss = DlibLayer("loss_metric", name, {"margin": r.real("margin"), "distance_threshold": r.real("threshold")},
                         {}, at)
    elif name == "loss_metric_":
        loss = DlibLayer("loss_metric", name, {"margin": 0.1, "distance_threshold": 0.75}, {}, at)
    else:
        raise r.error(f"loss layer {name!r}, expected 'loss_metric_2' (dlib's metric-learning loss)", at)
    # One version number per layer, outermost first: 2 = add_layer, 1 = a tag or skip layer, and the
    # innermost add_layer (over the input layer) writes 3 (older dlib: 2). A string comes next.
    versions: list[int] = []
    while (v := r.peek_int()) in (1, 2, 3):
        r.int_("a layer version")
        versions.append(v)
        if v == 3:
            break
    if not versions or versions[-1] == 1:
        raise r.error("expected the layers' version numbers, then the input layer")
    layers = [_read_input(r)]
    for i, v in enumerate(reversed(versions)):  # innermost first: the order their records follow in
        if v == 1 and i:
            layers.append(DlibLayer("tag/skip", "", {}, {}, r.pos))
            continue
        layers.append(_read_layer(r))
        _skip_layer_state(r, v, over_input=i == 0)
    layers.append(loss)
    if r.pos != len(data):
        raise r.error(f"{len(data) - r.pos} bytes follow the network: not a single dlib network")
    return DlibNetwork(path, layers, hashlib.sha256(data).hexdigest())


# --- the network type of dlib's example, layer by layer ---------------------------------------------


def _con(n: int, k: int, stride: int) -> tuple[str, dict]:
    pad = k // 2 if stride == 1 else 0  # con_'s default padding
    return "con", {"num_filters": n, "nr": k, "nc": k, "stride_y": stride, "stride_x": stride,
                   "padding_y": pad, "padding_x": pad, "use_relu": False}


def _pool(kind: str, k: int, stride: int) -> tuple[str, dict]:
    pad = k // 2 if stride == 1 else 0
    return kind, {"nr": k, "nc": k, "stride_y": stride, "stride_x": stride, "padding_y": pad, "padding_x": pad}


AFFINE = ("affine", {"mode": 0, "disabled": False})
RELU = ("relu", {"disabled": False})
TAG = ("tag/skip", {})  # tag1, tag2 or skip1: the file cannot tell which


def _block(n: int, stride: int) -> list[tuple[str, dict]]:
    """``block<N,affine,stride>``: con 3x3/stride, affine, relu, con 3x3/1, affine (forward order)."""
    return [_con(n, 3, stride), AFFINE, RELU, _con(n, 3, 1), AFFINE]


def expected_layers() -> list[tuple[str, dict]]:
    """``anet_type`` of ``examples/dnn_face_recognition_ex.cpp`` in forward order: (kind, settings)."""
    seq = [("input_rgb_image_sized", {"nr": INPUT_SIZE, "nc": INPUT_SIZE})]
    seq += [_con(32, 7, 2), AFFINE, RELU, _pool("max_pool", 3, 2)]  # the stem
    for _name, _dlib, n, down, plain in LEVELS:
        if down:  # ares_down: relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,2,tag1<...>>>>>>>>
            seq += [TAG, *_block(n, 2), TAG, TAG, _pool("avg_pool", 2, 2), ("add_prev", {}), RELU]
        for _ in range(plain):  # ares: relu<add_prev1<block<N,1,tag1<...>>>>
            seq += [TAG, *_block(n, 1), ("add_prev", {}), RELU]
    seq += [("avg_pool", {"nr": 0, "nc": 0, "stride_y": 1, "stride_x": 1, "padding_y": 0, "padding_x": 0}),
            ("fc", {"num_outputs": DESCRIPTOR_DIM, "num_inputs": FEATURE_DIM, "has_bias": False}),
            ("loss_metric", {})]
    return seq


def check_architecture(net: DlibNetwork) -> None:
    """Raise :class:`DlibFormatError` unless ``net`` is dlib's face-recognition ResNet, layer for layer."""
    expected = expected_layers()
    where = "dlib's face-recognition network (anet_type, examples/dnn_face_recognition_ex.cpp)"
    for i, (layer, (kind, attrs)) in enumerate(zip(net.layers, expected)):
        wrong = {k: layer.attrs.get(k) for k, v in attrs.items() if layer.attrs.get(k) != v}
        if layer.kind != kind or wrong:
            raise DlibFormatError(f"{net.path}: layer {i} (byte {layer.offset}) is {layer.describe()}, but {where} "
                                  f"has {DlibLayer(kind, '', dict(attrs)).describe()} there")
    if len(net.layers) != len(expected):
        raise DlibFormatError(f"{net.path}: {len(net.layers)} layers, but {where} has {len(expected)}")


# --- the network in PyTorch -------------------------------------------------------------------------


class Affine(nn.Module):
    """dlib's ``affine`` layer: ``y = scale[c] * x + shift[c]`` per channel (batch-norm folded into two vectors).

    ``scale`` and ``shift`` are ordinary learnable parameters, initialised from dlib's values, so
    the loaded network computes exactly what dlib does and fine-tuning updates them like any other
    weight; ``requires_grad_(False)`` holds them fixed. There are no batch statistics: the layer
    acts the same in ``train()`` and ``eval()``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))
        self.shift = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale[:, None, None] + self.shift[:, None, None]


def add_prev(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: ``a + b`` over the larger of both shapes, zero-filling the end of each
    (missing channels, bottom rows, right columns)."""
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def fill(t: torch.Tensor) -> torch.Tensor:
        dc, dh, dw = c - t.shape[1], h - t.shape[2], w - t.shape[3]
        return F.pad(t, (0, dw, 0, dh, 0, dc)) if dc or dh or dw else t

    return fill(a) + fill(b)


class Block(nn.Module):
    """dlib's ``block``: con 3x3/stride (no padding at stride 2), affine, relu, con 3x3/1, affine."""

    def __init__(self, cin: int, n: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, n, 3, stride, padding=1 if stride == 1 else 0)
        self.affine1 = Affine(n)
        self.conv2 = nn.Conv2d(n, n, 3, 1, padding=1)
        self.affine2 = Affine(n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))


class Residual(nn.Module):
    """dlib's ``ares``: ``relu(block(x) + x)``, shape unchanged."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.block = Block(n, n, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.block(x) + x)


class ResidualDown(nn.Module):
    """dlib's ``ares_down``: ``relu(add_prev(block(x) at stride 2, avg_pool 2x2/2 (x)))``.

    Maps under 3 px (only for inputs under :data:`NATIVE_MIN_INPUT`) are zero-padded around to 3x3
    for the block, and the shortcut's pooling window shrinks to the map (see the module docstring).
    """

    def __init__(self, cin: int, n: int) -> None:
        super().__init__()
        self.block = Block(cin, n, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        inner = x
        if h < 3 or w < 3:
            ph, pw = max(0, 3 - h), max(0, 3 - w)
            inner = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        shortcut = F.avg_pool2d(x, (min(2, h), min(2, w)), stride=2)
        return F.relu(add_prev(self.block(inner), shortcut))


class Stem(nn.Module):
    """con 7x7/2 (no padding), affine, relu, max-pool 3x3/2 (no padding): 150 -> 72 -> 35 px."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 7, 2)
        self.affine = Affine(32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(self.affine(self.conv(x))), 3, 2)


class DlibResNet(nn.Module):
    """dlib's face-recognition ResNet (``anet_type``); :func:`descriptor_model` loads its weights.

    Input ``(N, 3, H, W)`` float RGB 0-255 (normalised inside, as dlib does); at 150 px::

        stem    con 7x7/2 32, max-pool 3x3/2        -> 32 x 35 x 35
        layer1  3 x ares<32>           (alevel4)    -> 32 x 35 x 35
        layer2  ares_down<64>, 3 x ares (alevel3)   -> 64 x 17 x 17
        layer3  ares_down<128>, 2 x ares (alevel2)  -> 128 x 8 x 8
        layer4  ares_down<256>, 2 x ares (alevel1)  -> 256 x 4 x 4
        layer5  ares_down<256>          (alevel0)   -> 256 x 2 x 2
        global average pool                         -> 256      (features)
        fc 256 -> 128, no bias                      -> 128      (forward: the descriptor)

    :data:`STAGES` names what fine-tuning may hold fixed (``stage(name)`` gives the module).
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([122.782, 117.001, 104.298]))  # replaced by the file's
        self.stem = Stem()
        cin = 32
        for name, _dlib, n, down, plain in LEVELS:
            blocks: list[nn.Module] = [ResidualDown(cin, n)] if down else []
            blocks += [Residual(n) for _ in range(plain)]
            self.add_module(name, nn.Sequential(*blocks))
            cin = n
        self.fc = nn.Linear(FEATURE_DIM, DESCRIPTOR_DIM, bias=False)

    def stage(self, name: str) -> nn.Module:
        if name not in STAGES:
            raise ValueError(f"unknown stage {name!r} (known: {', '.join(STAGES)})")
        return getattr(self, name)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """dlib's ``input_rgb_image_sized``: ``(pixel - channel mean) / 256``."""
        return (x - self.mean[:, None, None]) / 256.0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` RGB 0-255 -> ``(N, 256)``: the globally averaged features before the fc."""
        if x.ndim != 4 or x.shape[1] != 3 or min(x.shape[-2:]) < MIN_INPUT:
            raise ValueError(f"expected (N, 3, H, W) RGB with H, W >= {MIN_INPUT}, got {tuple(x.shape)}")
        x = self.stem(self.normalize(x))
        for name in STAGES[1:]:
            x = getattr(self, name)(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` RGB 0-255 -> ``(N, 128)`` descriptors (dlib's own at 150 px)."""
        return self.fc(self.features(x))

    def dlib_order(self) -> Iterator[tuple[str, nn.Module]]:
        """The modules with parameters, in the order of the file's layers with parameters."""
        yield "stem.conv", self.stem.conv
        yield "stem.affine", self.stem.affine
        for name in STAGES[1:]:
            for i, blk in enumerate(getattr(self, name)):
                for part in ("conv1", "affine1", "conv2", "affine2"):
                    yield f"{name}.{i}.block.{part}", getattr(blk.block, part)
        yield "fc", self.fc


def state_dict_from(net: DlibNetwork, model: DlibResNet | None = None) -> dict[str, torch.Tensor]:
    """The parsed file's parameters under :class:`DlibResNet`'s names (checks every shape)."""
    model = model or DlibResNet()
    state = {"mean": torch.from_numpy(net.input.params["mean"].copy())}
    layers = net.with_params()[1:]  # [0] is the input layer's means
    modules = list(model.dlib_order())
    if len(layers) != len(modules):
        raise DlibFormatError(f"{net.path}: {len(layers)} layers with parameters, the port has {len(modules)}")
    for layer, (name, module) in zip(layers, modules):
        own = dict(module.named_parameters())
        if set(layer.params) != set(own):
            raise DlibFormatError(f"{net.path}: layer at byte {layer.offset} ({layer.describe()}) has "
                                  f"{sorted(layer.params)}, {name} needs {sorted(own)}")
        for key, value in layer.params.items():
            if tuple(value.shape) != tuple(own[key].shape):
                raise DlibFormatError(f"{net.path}: {name}.{key} is {tuple(value.shape)} in the file, "
                                      f"{tuple(own[key].shape)} in the port")
            state[f"{name}.{key}"] = torch.from_numpy(np.array(value, np.float32))  # a copy of its own
    return state


# --- finding the file, converting once, caching -----------------------------------------------------


def default_model_path() -> Path:
    """``face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat``, found without importing it."""
    from fercurate.faces.dlib68 import model_path

    return model_path(MODEL_FILE)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/fercurate`` (an absolute ``XDG_CACHE_HOME`` only), else ``~/.cache/fercurate``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "fercurate"


def cache_file(sha256: str, cache_dir: str | os.PathLike | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / f"dlib_resnet-{sha256}.npz"


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except OSError as exc:
        raise DlibFormatError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return h.hexdigest()


def _save_cache(target: Path, sha256: str, source: Path, state: dict[str, torch.Tensor]) -> None:
    """An uncompressed ``.npz`` of two arrays: every tensor end to end as float32 (``data``), and a JSON
    index of their names and shapes with the file they came from (``index``): one read to load."""
    arrays = [v.detach().cpu().numpy().astype(np.float32).reshape(-1) for v in state.values()]
    index = {"format": CACHE_FORMAT, "sha256": sha256, "source": str(source),
             "tensors": [[k, list(v.shape)] for k, v in state.items()]}
    try:
        with atomic_path(target) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, index=np.array(json.dumps(index)), data=np.concatenate(arrays))
    except StorageError as exc:
        warnings.warn(f"{exc}; the converted weights are not cached", stacklevel=3)


def _load_cache(target: Path, sha256: str, model: DlibResNet) -> bool:
    """Load ``target`` into ``model``; False when absent, of another file, or (with a warning) unreadable."""
    try:
        with np.load(target, allow_pickle=False) as saved:
            index = json.loads(str(saved["index"]))
            if index.get("format") != CACHE_FORMAT or index.get("sha256") != sha256:
                return False
            data = torch.from_numpy(saved["data"])
        state, at = {}, 0
        for name, shape in index["tensors"]:
            n = math.prod(shape)
            state[name] = data[at : at + n].view(shape).clone()  # each tensor with storage of its own
            at += n
        if at != data.numel():
            raise ValueError(f"index covers {at} of {data.numel()} values")
        model.load_state_dict(state, strict=True, assign=True)
        return True
    except FileNotFoundError:
        return False
    except Exception as exc:  # noqa: BLE001 - any damage to a cache file means: convert again
        warnings.warn(f"{target}: unreadable cache ({exc}); converting the .dat again", stacklevel=3)
        return False


def descriptor_model(path: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None) -> DlibResNet:
    """dlib's face-recognition ResNet with its trained weights, in eval mode (parameters trainable).

    ``path``: the ``.dat`` (default: the one in ``face_recognition_models``). The first call parses
    it, checks it layer by layer against dlib's network type and saves the tensors in ``cache_dir``
    (default :func:`default_cache_dir`) as ``dlib_resnet-<sha256 of the .dat>.npz``, written
    atomically; later calls load that. ``model.weights_source`` says which happened.
    """
    path = Path(path) if path is not None else default_model_path()
    sha256 = _file_sha256(path)
    target = cache_file(sha256, cache_dir)
    with torch.device("meta"):  # no random initialisation: every tensor is replaced by the file's
        model = DlibResNet()
    from_cache = _load_cache(target, sha256, model)
    if not from_cache:
        net = read_dat(path)
        check_architecture(net)
        state = state_dict_from(net, model)
        model.load_state_dict(state, strict=True, assign=True)
        _save_cache(target, net.sha256, path, state)
    model.weights_source = {"dat": str(path), "sha256": sha256, "cache": str(target), "from_cache": from_cache}
    return model.eval()
