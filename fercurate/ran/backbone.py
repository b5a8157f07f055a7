"""ResNet-18, written here with torchvision's parameter names so users' ``.pth`` files load as they are.

torchvision cannot be imported beside the CPU torch build used here, so the network is spelled out:
``conv1, bn1, layer1.0.conv1, ..., layer4.1.bn2, fc``. ImageNet or MS-Celeb-1M checkpoints trained with
torchvision's ``resnet18`` (or the RAN authors' code, which prefixes ``module.``) load with
:func:`load_pretrained`, which reports every missing, unexpected or wrongly-shaped key instead of failing.

``stem="imagenet"`` is the standard 7x7/2 convolution + 3x3/2 max-pool (input 224 -> 56x56 at layer1).
``stem="no-maxpool"`` keeps the same conv1 (so pretrained weights still load) but skips the max-pool:
for small faces (48-64 px, e.g. FERPlus) it keeps 4x more spatial detail in every stage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from fercurate.errors import InputError
from fercurate.ran.config import STEMS

FEATURE_DIM = 512


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (a 1x1 projection when the shape changes)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18. ``features(x)`` -> (B, 512) after global average pooling; ``forward`` adds ``fc``.

    ``num_classes=0`` builds no ``fc`` (RAN uses the 512-d features and has its own classifier).
    """

    def __init__(self, num_classes: int = 1000, stem: str = "imagenet") -> None:
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"unknown stem {stem!r} (known: {', '.join(STEMS)})")
        self.stem = stem
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if stem == "imagenet" else nn.Identity()
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(FEATURE_DIM, num_classes) if num_classes else None
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Zero-init the last BN of each block: every block starts as identity, which speeds up
        # training from scratch (Goyal et al. 2017); pretrained weights overwrite it anyway.
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64, H/4, W/4) with the imagenet stem
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 512, H/32, W/32)
        return torch.flatten(self.avgpool(x), 1)  # (B, 512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        return f if self.fc is None else self.fc(f)


@dataclass
class LoadReport:
    """What happened when pretrained weights were loaded into a model."""

    path: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the model, not in the file: left as initialised
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the model: ignored
    skipped_shape: list[str] = field(default_factory=list)  # "name: file (1000, 512) vs model (8, 512)"

    def summary(self) -> str:
        lines = [f"{self.path}: loaded {len(self.loaded)} tensors"]
        for title, keys in (
            ("missing (kept initialised)", self.missing),
            ("unexpected (ignored)", self.unexpected),
            ("shape mismatch (skipped)", self.skipped_shape),
        ):
            if keys:
                shown = ", ".join(keys[:8]) + (f", ... (+{len(keys) - 8})" if len(keys) > 8 else "")
                lines.append(f"  {title}: {len(keys)}: {shown}")
        return "\n".join(lines)


_PREFIXES = ("module.", "backbone.", "model.", "resnet.")


def _extract_state_dict(obj: object, path: str) -> dict[str, torch.Tensor]:
    """The tensor dict inside a ``.pth``: a bare state_dict, or under 'state_dict' / 'model'."""
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{path}: no state_dict of tensors found (expected a torchvision-style ResNet-18 .pth)")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _strip_prefix(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                changed = True
    return key


def load_pretrained(
    backbone: ResNet18, path: str | os.PathLike, *, skip_fc: bool = True
) -> LoadReport:
    """Load a torchvision-named ResNet-18 ``.pth`` into ``backbone``; never crashes on extra/missing keys.

    ``module.`` (DataParallel) and similar prefixes are stripped. ``fc.*`` is skipped when
    ``skip_fc`` (a 1000-class ImageNet head is no use for 8 expressions); keys whose shape differs
    from the model's are reported and skipped. The RAN authors' ``alpha``/``beta`` layers are reported
    as unexpected.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: pretrained weights not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad user file
        raise InputError(f"{path}: cannot read as a PyTorch weights file ({exc})") from exc
    source = {_strip_prefix(k): v for k, v in _extract_state_dict(obj, str(path)).items()}
    target = backbone.state_dict()
    report = LoadReport(str(path))
    to_load: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        if key not in target:
            if skip_fc and key.startswith("fc."):
                report.skipped_shape.append(f"{key}: file {tuple(value.shape)} (classifier head, not loaded)")
            else:
                report.unexpected.append(key)
        elif skip_fc and key.startswith("fc."):
            report.skipped_shape.append(f"{key}: file {tuple(value.shape)} (classifier head, not loaded)")
        elif tuple(value.shape) != tuple(target[key].shape):
            report.skipped_shape.append(f"{key}: file {tuple(value.shape)} vs model {tuple(target[key].shape)}")
        else:
            to_load[key] = value
    report.loaded = sorted(to_load)
    report.missing = sorted(
        k for k in target if k not in to_load and not (skip_fc and k.startswith("fc.")) and not k.endswith("num_batches_tracked")
    )
    if not to_load:
        raise InputError(f"{path}: no tensor matches a ResNet-18 parameter name (is this a ResNet-18 .pth?)")
    backbone.load_state_dict(to_load, strict=False)
    return report
