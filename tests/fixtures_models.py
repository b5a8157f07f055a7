"""Third-party-style models for the eval tests: one fixed classifier of the toy faces, exported as others ship models.

:class:`RegionModel` reads the toy faces of :mod:`fixtures_ran` without training: the mean brightness of
the region where each class draws its shape (top-left block, top-right block, bottom bar, centre disc)
is that class's logit. :class:`Shipped` wraps it the way a model from elsewhere is built (channels last,
one gray channel, inputs in [-1, 1], another label order, sigmoid or probability outputs), undoing each
of those inside, so a model scored with its right contract gives exactly the predictions of
:class:`RegionModel` itself, and a wrong contract gives others. :func:`export_onnx` and
:func:`export_torchscript` write them with ``torch.onnx.export`` / ``torch.jit.trace``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

CANONICAL = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt"]
FER2013 = ["anger", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
GRID = 8


class RegionModel(torch.nn.Module):
    """Faces (N, 3, S, S) in [0, 1] -> canonical-order logits (N, 8) from an 8x8 grid of mean brightness."""

    def __init__(self, size: int = 24) -> None:
        super().__init__()
        self.cell = size // GRID
        weight = torch.zeros(len(CANONICAL), GRID, GRID)
        weight[0, 1:3, 1:3] = 1  # neutral: top-left block
        weight[1, 1:3, 5:7] = 1  # happy: top-right block
        weight[2, 7, 2:6] = 1  # sad: bottom bar
        weight[6, 3:5, 3:5] = 1  # anger: centre disc
        weight = weight / weight.flatten(1).sum(1).clamp(min=1).view(-1, 1, 1)
        self.register_buffer("weight", weight.flatten(1))
        self.register_buffer("bias", torch.tensor([0.0, 0.0, 0.0, -1.0, -1.0, -1.0, 0.0, -1.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gray = x.mean(1, keepdim=True)
        cells = F.avg_pool2d(gray, self.cell).flatten(1)
        return 10 * (cells @ self.weight.T + self.bias)


class Shipped(torch.nn.Module):
    """:class:`RegionModel` behind another contract: input in ``layout`` with ``channels`` and ``norm``, outputs
    in ``order`` as ``outputs`` (logits, probabilities, or sigmoid scores far below 1). With ``resize`` the
    model takes any input size and resizes it to ``resize`` pixels itself (as many exports do)."""

    def __init__(self, *, layout: str = "nchw", channels: str = "rgb", norm: str = "unit",
                 order: list[str] = CANONICAL, outputs: str = "logits", resize: int | None = None) -> None:
        super().__init__()
        self.inner, self.layout, self.channels, self.norm, self.outputs = RegionModel(), layout, channels, norm, outputs
        self.resize = resize
        self.register_buffer("idx", torch.as_tensor([CANONICAL.index(c) for c in order]))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout == "nhwc":
            x = x.permute(0, 3, 1, 2)
        if self.norm == "signed":
            x = (x + 1) / 2
        elif self.norm == "imagenet":
            x = x * self.std + self.mean
        if self.channels == "gray":
            x = x.expand(-1, 3, -1, -1)
        elif self.channels == "bgr":
            x = x.flip(1)
        if self.resize:
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
        logits = self.inner(x).index_select(1, self.idx)
        if self.outputs == "probabilities":
            return torch.softmax(logits, 1)
        if self.outputs == "sigmoid":
            return torch.sigmoid(logits - 40)  # every score tiny: a softmax over them is flat
        return logits


def example_input(model: Shipped, size: int, batch: int = 2) -> torch.Tensor:
    c = 1 if model.channels == "gray" else 3
    return torch.rand(batch, size, size, c) if model.layout == "nhwc" else torch.rand(batch, c, size, size)


def export_onnx(model: Shipped, path: Path, size: int, *, any_size: bool = False, metadata: dict | None = None) -> Path:
    """ONNX file of ``model`` taking a dynamic batch (and, with ``any_size``, dynamic height and width);
    ``metadata`` goes into ``metadata_props`` as ``fercurate.<key>``."""
    import onnx

    axes = {0: "batch"}
    if any_size:
        axes.update({1: "height", 2: "width"} if model.layout == "nhwc" else {2: "height", 3: "width"})
    torch.onnx.export(model.eval(), (example_input(model, size),), str(path), dynamo=False, input_names=["faces"],
                      output_names=["scores"], dynamic_axes={"faces": axes, "scores": {0: "batch"}})
    if metadata:
        proto = onnx.load(str(path))
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = f"fercurate.{key}", value
        onnx.save(proto, str(path))
    return path


def export_torchscript(model: Shipped, path: Path, size: int, contract: dict | None = None) -> Path:
    """TorchScript file of ``model``; ``contract`` goes into its ``contract.json`` extra file."""
    with torch.no_grad():
        traced = torch.jit.trace(model.eval(), example_input(model, size))
    extra = {"contract.json": json.dumps(contract)} if contract else {}
    torch.jit.save(traced, str(path), _extra_files=extra)
    return path
