"""The Region Attention Network (Wang et al., IEEE TIP 2020), written to read like the paper.

Notation (paper Sec. III):
    I_0        the whole face; I_1..I_k the region crops (here k = 5)
    F_i        512-d ResNet-18 feature of crop i                       (B, k+1, 512)
    mu_i       self-attention weight      mu_i = sigmoid(F_i^T q0)     (B, k+1)
    F_m        global feature             F_m = sum_i mu_i F_i / sum_i mu_i            (B, 512)
    nu_i       relation-attention weight  nu_i = sigmoid([F_i : F_m]^T q1)             (B, k+1)
    P          final representation       P = sum_i mu_i nu_i [F_i : F_m] / sum_i mu_i nu_i  (B, 1024)
    logits     FC(P)                                                   (B, num_classes)

All k+1 crops of a batch go through the backbone as one batch of B*(k+1) images.

``attention="softmax"`` is the authors' public code instead of the paper: the sigmoid outputs are
further normalised with a softmax over the crops (for both mu and nu).

The model takes faces as float RGB in [0, 1], shape (B, 3, H, W), and normalises them itself (ImageNet
mean/std by default; none for the official-code variant), so exported models have one simple input
contract.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fercurate.ran.backbone import FEATURE_DIM, ResNet18
from fercurate.ran.config import ARCHS, ATTENTIONS, NORMALIZATIONS, TrainConfig, config_from_state
from fercurate.ran.crops import box_thetas, crop_regions, fixed_boxes

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class RANOutput:
    logits: torch.Tensor  # (B, num_classes)
    mu: torch.Tensor | None = None  # (B, k+1) self-attention weights, crop 0 = whole face
    nu: torch.Tensor | None = None  # (B, k+1) relation-attention weights


class InputNorm(nn.Module):
    """(x - mean) / std with fixed buffers, or the identity."""

    def __init__(self, kind: str = "imagenet") -> None:
        super().__init__()
        if kind not in NORMALIZATIONS:
            raise ValueError(f"unknown normalisation {kind!r} (known: {', '.join(NORMALIZATIONS)})")
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if kind == "imagenet" else ((0.0,) * 3, (1.0,) * 3)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def self_attention(feats: torch.Tensor, q0: nn.Linear, attention: str = "sigmoid") -> tuple[torch.Tensor, torch.Tensor]:
    """mu_i = sigmoid(F_i^T q0); F_m = sum_i mu_i F_i / sum_i mu_i.   feats (B, K, D) -> mu (B, K), F_m (B, D)."""
    mu = torch.sigmoid(q0(feats).squeeze(-1))  # (B, K)
    if attention == "softmax":
        mu = torch.softmax(mu, dim=1)
    f_m = (mu.unsqueeze(-1) * feats).sum(1) / mu.sum(1, keepdim=True)  # (B, D)
    return mu, f_m


def relation_attention(
    feats: torch.Tensor, f_m: torch.Tensor, mu: torch.Tensor, q1: nn.Linear, attention: str = "sigmoid"
) -> tuple[torch.Tensor, torch.Tensor]:
    """nu_i = sigmoid([F_i:F_m]^T q1); P = sum_i mu_i nu_i [F_i:F_m] / sum_i mu_i nu_i.

    feats (B, K, D), f_m (B, D), mu (B, K) -> nu (B, K), P (B, 2D).
    """
    concat = torch.cat([feats, f_m.unsqueeze(1).expand_as(feats)], dim=-1)  # (B, K, 2D) = [F_i : F_m]
    nu = torch.sigmoid(q1(concat).squeeze(-1))  # (B, K)
    if attention == "softmax":
        nu = torch.softmax(nu, dim=1)
    w = mu * nu  # (B, K)
    p = (w.unsqueeze(-1) * concat).sum(1) / w.sum(1, keepdim=True)  # (B, 2D)
    return nu, p


class RegionAttentionNetwork(nn.Module):
    """RAN: crops -> shared ResNet-18 -> self-attention -> relation-attention -> FC."""

    def __init__(
        self,
        num_classes: int = 8,
        *,
        input_size: int = 224,
        crop_set: str = "paper",
        attention: str = "sigmoid",
        normalize: str = "imagenet",
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"unknown attention {attention!r} (known: {', '.join(ATTENTIONS)})")
        self.input_size = input_size
        self.attention = attention
        self.norm = InputNorm(normalize)
        self.register_buffer("boxes", fixed_boxes(crop_set))  # (k+1, 4), whole face first
        self.backbone = ResNet18(num_classes=0, stem=stem)
        self.q0 = nn.Linear(FEATURE_DIM, 1)  # self-attention
        self.q1 = nn.Linear(2 * FEATURE_DIM, 1)  # relation-attention
        self.fc = nn.Linear(2 * FEATURE_DIM, num_classes)
        self.channels_last = False  # set by the trainer (NHWC is faster on CUDA and on CPU)
        self.cpu_chunk_pixels = 16 * 224 * 224  # CPU inference slice size, see features()

    @property
    def num_crops(self) -> int:
        return self.boxes.shape[0]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features of all crops, (B*K, 3, s, s) -> (B*K, 512), computed as one batch.

        Except at inference on a CPU, where the batch goes through in slices of at most
        ``cpu_chunk_pixels`` input pixels: the outputs are identical (BatchNorm then uses its running
        statistics, every crop is independent), and a 6x batch of large feature maps overflows the CPU
        caches (224 px, 16 faces: 96 crops in one batch took 6.9x the time of 16 faces, 6 slices 5.8x).
        """
        n, s = x.shape[0], x.shape[-1]
        per = max(1, self.cpu_chunk_pixels // (s * s))
        if self.training or x.device.type != "cpu" or n <= per:
            return self.backbone.features(x)
        return torch.cat([self.backbone.features(part) for part in x.split(per)])

    def crops(self, faces: torch.Tensor, boxes: torch.Tensor | None = None) -> torch.Tensor:
        """faces (B, 3, H, W) -> crops (B, k+1, 3, s, s); per-face boxes (B, k+1, 4) override the fixed ones.

        Crop 0 (the whole face) is the face itself when it already has the input size: no resampling.
        """
        thetas = box_thetas(self.boxes if boxes is None else boxes)
        s = self.input_size
        if faces.shape[-2:] != (s, s):
            return crop_regions(faces, thetas, s)
        regions = crop_regions(faces, thetas[..., 1:, :, :], s)  # (B, k, 3, s, s)
        return torch.cat([faces.unsqueeze(1), regions], dim=1)

    def forward(self, faces: torch.Tensor, boxes: torch.Tensor | None = None) -> RANOutput:
        b = faces.shape[0]
        x = self.crops(self.norm(faces), boxes)  # (B, K, 3, s, s), K = k+1
        k = x.shape[1]
        x = x.reshape(b * k, *x.shape[2:])  # one backbone batch of B*K crops
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        feats = self.features(x).view(b, k, -1)  # F_i: (B, K, 512)
        mu, f_m = self_attention(feats, self.q0, self.attention)  # (B, K), (B, 512)
        nu, p = relation_attention(feats, f_m, mu, self.q1, self.attention)  # (B, K), (B, 1024)
        return RANOutput(self.fc(p), mu, nu)


def head_from_baseline(model: nn.Module, fc_weight: torch.Tensor, fc_bias: torch.Tensor) -> None:
    """Start ``model``'s classifier from a trained baseline's FC (num_classes, 512).

    A baseline gets the weights as they are. RAN gets W_RAN = [W/2 : W/2] and the same bias, so
    FC(P) = W (sum_i w_i F_i / sum_i w_i + F_m) / 2 + b: the baseline's classifier on the average of
    the two halves of P, which is exactly the baseline's prediction when every crop has the same
    feature. The attention vectors q0, q1 start at zero (every crop weighted alike, mu = nu = 1/2).
    """
    fc = model.fc
    n, d = fc_weight.shape
    if n != fc.out_features or d != FEATURE_DIM:
        raise ValueError(f"classifier of shape ({n}, {d}) does not fit a {fc.out_features}-class ResNet-18 head")
    with torch.no_grad():
        if isinstance(model, RegionAttentionNetwork):
            fc.weight.copy_(torch.cat([fc_weight, fc_weight], dim=1) / 2)  # (C, 1024) = [W/2 : W/2]
            for q in (model.q0, model.q1):
                q.weight.zero_()
                q.bias.zero_()
        else:
            fc.weight.copy_(fc_weight)
        fc.bias.copy_(fc_bias)


class BaselineResNet(nn.Module):
    """The paper's baseline: ResNet-18 on the whole face, FC on its 512-d feature."""

    def __init__(self, num_classes: int = 8, *, input_size: int = 224, normalize: str = "imagenet", stem: str = "imagenet") -> None:
        super().__init__()
        self.input_size = input_size
        self.norm = InputNorm(normalize)
        self.backbone = ResNet18(num_classes=0, stem=stem)
        self.fc = nn.Linear(FEATURE_DIM, num_classes)
        self.channels_last = False  # set by the trainer (NHWC is faster on CUDA and on CPU)

    def forward(self, faces: torch.Tensor, boxes: torch.Tensor | None = None) -> RANOutput:
        x = self.norm(faces)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return RANOutput(self.fc(self.backbone.features(x)))


class LogitsOnly(nn.Module):
    """Wraps a model so it returns plain logits (for TorchScript / ONNX export)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return self.model(faces).logits


def build_model(
    arch: str,
    num_classes: int,
    *,
    input_size: int,
    crop_set: str = "paper",
    attention: str = "sigmoid",
    normalize: str = "imagenet",
    stem: str = "imagenet",
) -> nn.Module:
    """The network named by ``arch`` ('ran' or 'baseline')."""
    if arch == "ran":
        return RegionAttentionNetwork(
            num_classes, input_size=input_size, crop_set=crop_set, attention=attention, normalize=normalize, stem=stem
        )
    if arch == "baseline":
        return BaselineResNet(num_classes, input_size=input_size, normalize=normalize, stem=stem)
    raise ValueError(f"unknown arch {arch!r} (known: {', '.join(ARCHS)})")


def model_for_config(cfg: TrainConfig, num_classes: int) -> nn.Module:
    """The network a (resolved) training config describes, freshly initialised."""
    return build_model(cfg.arch, num_classes, input_size=cfg.input_size, crop_set=cfg.crop_set,
                       attention=cfg.attention, normalize=cfg.normalize, stem=cfg.stem)


def model_from_checkpoint(state: dict) -> nn.Module:
    """Rebuild the network a checkpoint describes and load its weights."""
    model = model_for_config(config_from_state(state["config"]).resolved(), len(state["labels"]))
    model.load_state_dict(state["model"])
    return model
