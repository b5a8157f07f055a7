"""The scorer's network: faces -> ``body`` features -> an occlusion head (occluded?, then each type) and
an expression head, either a small CNN from scratch or a trained expression model's ResNet-18.

The network takes normalised 1-channel 48x48 tensors (:func:`face_tensor`), whichever body it has,
so training and scoring code are shared. :func:`predict` averages each face with its mirror image.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fercurate.errors import InputError
from fercurate.ran.backbone import FEATURE_DIM
from fercurate.ran.checkpoint import file_sha256, load_checkpoint
from fercurate.ran.model import model_from_checkpoint
from fercurate.schema import CANONICAL_LABELS, OCCLUDED_TYPES

OUTPUTS = 1 + len(OCCLUDED_TYPES)  # occluded, then one per type of schema.OCCLUDED_TYPES


def build_net(backbone: str | os.PathLike | None = None) -> nn.Module:
    """The scorer: ``body`` (faces -> features) and two heads, ``occlusion`` (1 + 5 logits: occluded,
    then each type) and ``expression`` (8 classes).

    Without ``backbone``: four conv blocks (16-32-64-128 channels) on 48x48 and global pooling
    (~100k weights). With ``backbone`` (a fercurate checkpoint): that model's ResNet-18 and input
    normalisation, its expression FC copied into the expression head.
    """
    if backbone is not None:
        return _backbone_net(backbone)

    def block(i: int, o: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))

    class OcclusionNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                block(1, 16), nn.MaxPool2d(2), block(16, 32), nn.MaxPool2d(2), block(32, 64), nn.MaxPool2d(2),
                block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
            )
            self.occlusion = nn.Linear(128, OUTPUTS)
            self.expression = nn.Linear(128, len(CANONICAL_LABELS))

        def forward(self, x):  # noqa: ANN001, ANN202 - torch convention
            return self.occlusion(self.body(x))

    return OcclusionNet()


def _backbone_net(path: str | os.PathLike) -> nn.Module:
    """The ResNet-18 of a fercurate checkpoint as the scorer's body.

    The body takes the same normalised 1-channel 48x48 tensors as the small CNN: it undoes
    :func:`face_tensor`'s normalisation, repeats the grey channel to RGB, resizes to the model's input
    size and applies the model's own input normalisation, so training and scoring code are shared.
    """
    state = load_checkpoint(path)
    model = model_from_checkpoint(state)
    size = int(model.input_size)

    class ResNetBody(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm, self.backbone = model.norm, model.backbone

        def forward(self, x):  # noqa: ANN001, ANN202 - (B, 1, 48, 48) normalised grey -> (B, 512)
            rgb = (x * 0.25 + 0.5).expand(-1, 3, -1, -1)
            if rgb.shape[-1] != size:
                rgb = F.interpolate(rgb, size=(size, size), mode="bilinear", align_corners=False)
            return self.backbone.features(self.norm(rgb))

    class BackboneOcclusionNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = ResNetBody()
            self.occlusion = nn.Linear(FEATURE_DIM, OUTPUTS)
            self.expression = nn.Linear(FEATURE_DIM, len(CANONICAL_LABELS))
            w = model.fc.weight.data  # (C, 512) baseline; (C, 1024) RAN, on P = [F_i : F_m]
            if w.shape[1] == 2 * FEATURE_DIM:
                w = w[:, :FEATURE_DIM] + w[:, FEATURE_DIM:]  # the whole face as RAN's only crop: P = [f : f]
            known = w.shape[0]  # 7 or 8 classes, in canonical order (checked on load)
            self.expression.weight.data[:known] = w
            self.expression.bias.data[:known] = model.fc.bias.data

        def forward(self, x):  # noqa: ANN001, ANN202 - torch convention
            return self.occlusion(self.body(x))

    return BackboneOcclusionNet()


def check_backbone(path: str | None) -> str:
    """SHA-256 of the backbone checkpoint ('' without one), after checking it is a fercurate checkpoint
    (a clear error before any face is loaded)."""
    if not path:
        return ""
    state = load_checkpoint(path)
    if state.get("arch") not in ("ran", "baseline"):
        raise InputError(f"{path}: --backbone needs a checkpoint of a RAN or baseline model (arch: {state.get('arch')})")
    return file_sha256(path)


def face_tensor(faces: np.ndarray, device: torch.device | None = None) -> torch.Tensor:
    """(N, 48, 48) uint8 faces -> the network's input, (N, 1, 48, 48) float, normalised."""
    x = torch.from_numpy(np.ascontiguousarray(faces, dtype=np.float32) / 255.0)[:, None].to(device)
    return (x - 0.5) / 0.25


def device_of(net: Any) -> torch.device:
    return next(net.parameters()).device


def predict(net: Any, faces: np.ndarray, batch: int = 512) -> np.ndarray:
    """(N, 6) probabilities: occluded, then each type given occluded (averaged with the mirror image)."""
    net.eval()
    dev = device_of(net)
    out = []
    with torch.no_grad():
        for start in range(0, len(faces), batch):
            chunk = faces[start : start + batch]
            p = torch.sigmoid(net(face_tensor(chunk, dev))) + torch.sigmoid(net(face_tensor(chunk[:, :, ::-1].copy(), dev)))
            out.append((p / 2).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, OUTPUTS), np.float32)


__all__ = ["OUTPUTS", "build_net", "check_backbone", "device_of", "face_tensor", "predict"]
