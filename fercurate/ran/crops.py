"""Region generation for RAN: crop boxes, and cutting them out of a batch of faces in one sampling call.

A box is ``(x0, y0, x1, y1)`` in fractions of the face (0 = left/top edge, 1 = right/bottom edge).
Crop 0 is always the whole face ``(0, 0, 1, 1)``; the RB-loss compares the other crops with it.

* ``paper`` (default): the RAN paper's fixed crops: top-left, top-right and center-down at 0.75 of
  the face; center at 0.9 and at 0.85.
* ``official-code``: the boxes of the authors' public on-the-fly cropping code
  (``part_attentioon_sample_fly.py``): same three 0.75 corners, center crops at 0.9 and 0.8.
* random cropping: each crop a random square of side ``scale`` in ``[min_scale, max_scale]`` at a random
  position, redrawn every training batch (evaluation uses one seeded draw for all faces).
* landmark-based cropping: squares of side ``landmark_scale`` centred on facial landmarks (two eyes,
  nose, two mouth corners) taken from the manifest's ``landmarks`` column; with ``clip`` the part of a
  square outside the face is cut away (the paper: radius 0.4, "remove the regions which are out of
  the original image").

Boxes become affine sampling grids (``torch.nn.functional.affine_grid`` convention, align_corners=False),
composed with an optional per-face augmentation transform, so a whole batch of faces x crops is cut out
and resized with a single ``grid_sample`` call.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from fercurate.ran.config import CROP_MODES, TrainConfig

WHOLE_FACE = (0.0, 0.0, 1.0, 1.0)

CROP_SETS: dict[str, tuple[tuple[float, float, float, float], ...]] = {
    # the paper (Sec. III-A, Fig. 3): original face + 5 fixed regions
    "paper": (
        WHOLE_FACE,
        (0.0, 0.0, 0.75, 0.75),  # top-left, 0.75
        (0.25, 0.0, 1.0, 0.75),  # top-right, 0.75
        (0.125, 0.25, 0.875, 1.0),  # center-down, 0.75
        (0.05, 0.05, 0.95, 0.95),  # center, 0.9
        (0.075, 0.075, 0.925, 0.925),  # center, 0.85
    ),
    # the authors' on-the-fly cropping code: the same corners, center crops at 0.9 and 0.8
    "official-code": (
        WHOLE_FACE,
        (0.0, 0.0, 0.75, 0.75),
        (0.25, 0.0, 1.0, 0.75),
        (0.125, 0.25, 0.875, 1.0),
        (0.05, 0.05, 0.95, 0.95),
        (0.1, 0.1, 0.9, 0.9),
    ),
}
CROP_NAMES: dict[str, tuple[str, ...]] = {
    "paper": ("face", "top-left", "top-right", "center-down", "center-0.9", "center-0.85"),
    "official-code": ("face", "top-left", "top-right", "center-down", "center-0.9", "center-0.8"),
}
__all__ = ["CROP_MODES", "CROP_NAMES", "CROP_SETS", "augment_matrices", "box_thetas", "crop_regions", "eval_boxes",
           "fixed_boxes", "fixed_crop_boxes", "invert_points", "landmark_boxes", "landmark_centres", "random_boxes"]

# Landmark layouts: which points (indices into the manifest's landmark list) centre each crop.
# 68 points (iBUG/dlib order): eye centres are the means of 36-41 / 42-47, nose tip 30, mouth corners 48 / 54.
LANDMARK_GROUPS: dict[int, tuple[tuple[int, ...], ...]] = {
    68: (tuple(range(36, 42)), tuple(range(42, 48)), (30,), (48,), (54,)),
    5: ((0,), (1,), (2,), (3,), (4,)),  # left eye, right eye, nose, left mouth corner, right mouth corner
}


def fixed_boxes(crop_set: str = "paper") -> torch.Tensor:
    """The fixed crop boxes of ``crop_set`` as a (K, 4) tensor, whole face first."""
    if crop_set not in CROP_SETS:
        raise ValueError(f"unknown crop set {crop_set!r} (known: {', '.join(CROP_SETS)})")
    return torch.tensor(CROP_SETS[crop_set], dtype=torch.float32)


def random_boxes(
    batch: int,
    num_crops: int,
    *,
    min_scale: float = 0.7,
    max_scale: float = 0.95,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(batch, num_crops + 1, 4) random square boxes inside the face, whole face first."""
    scale = min_scale + (max_scale - min_scale) * torch.rand(batch, num_crops, generator=generator)
    x0 = (1 - scale) * torch.rand(batch, num_crops, generator=generator)
    y0 = (1 - scale) * torch.rand(batch, num_crops, generator=generator)
    boxes = torch.stack([x0, y0, x0 + scale, y0 + scale], dim=-1)
    whole = torch.tensor(WHOLE_FACE).expand(batch, 1, 4)
    return torch.cat([whole, boxes], dim=1)


def eval_boxes(cfg: TrainConfig, num_crops: int | None = None) -> torch.Tensor:
    """The boxes random cropping uses at evaluation: one seeded draw of ``cfg.random_eval_crops`` regions
    (or ``num_crops``), the same for every face, whole face first."""
    g = torch.Generator().manual_seed(cfg.seed + 7919)
    n = cfg.random_eval_crops if num_crops is None else num_crops
    return random_boxes(1, n, min_scale=cfg.random_min_scale, max_scale=cfg.random_max_scale, generator=g)[0]


def fixed_crop_boxes(cfg: TrainConfig) -> torch.Tensor:
    """The fixed boxes a config's model uses (for drawing attention on faces)."""
    return fixed_boxes(cfg.resolved().crop_set)


def landmark_centres(landmarks: np.ndarray) -> np.ndarray:
    """(N, 2*L) landmark rows in face fractions -> (N, 5, 2) crop centres (NaN where missing)."""
    n = landmarks.shape[0]
    npts = landmarks.shape[1] // 2
    if npts not in LANDMARK_GROUPS:
        raise ValueError(
            f"landmark-based cropping needs 5 or 68 landmarks per face, the manifest has {npts}"
        )
    pts = landmarks.reshape(n, npts, 2)
    return np.stack([pts[:, list(g), :].mean(axis=1) for g in LANDMARK_GROUPS[npts]], axis=1)


def landmark_boxes(centres: torch.Tensor, scale: float = 0.5, clip: bool = False) -> torch.Tensor:
    """(B, K, 2) centres in face fractions -> (B, K + 1, 4) square boxes of side ``scale``, whole face first.

    ``clip``: boxes are cut to the face (0..1), so a region near the edge holds no padding (and is no
    longer square; it is stretched to the input size like every crop).
    """
    half = scale / 2
    boxes = torch.cat([centres - half, centres + half], dim=-1)
    if clip:
        boxes = boxes.clamp(0.0, 1.0)
    whole = torch.tensor(WHOLE_FACE, dtype=boxes.dtype).expand(boxes.shape[0], 1, 4)
    return torch.cat([whole, boxes], dim=1)


def box_thetas(boxes: torch.Tensor, augment: torch.Tensor | None = None) -> torch.Tensor:
    """Affine sampling matrices (…, 2, 3) for boxes (…, 4), optionally after a per-face transform.

    In normalised coordinates (-1..1) a box is ``centre c + half-size h * v``; with an augmentation
    ``A`` (B, 2, 3) mapping output to input coordinates the crop samples the input at
    ``A_lin (c + h v) + A_t``.
    """
    x0, y0, x1, y1 = boxes.unbind(-1)
    zeros = torch.zeros_like(x0)
    theta = torch.stack(
        [
            torch.stack([x1 - x0, zeros, x0 + x1 - 1], dim=-1),
            torch.stack([zeros, y1 - y0, y0 + y1 - 1], dim=-1),
        ],
        dim=-2,
    )  # (..., 2, 3): half-sizes on the diagonal, centre in the last column
    if augment is None:
        return theta
    lin, trans = augment[..., :2], augment[..., 2:]  # (B, 2, 2), (B, 2, 1)
    if theta.dim() == 3:  # shared boxes (K, 2, 3) -> (B, K, 2, 3)
        theta = theta.unsqueeze(0).expand(augment.shape[0], -1, -1, -1)
    lin = lin.unsqueeze(1)  # (B, 1, 2, 2)
    trans = trans.unsqueeze(1)  # (B, 1, 2, 1)
    return torch.cat([lin @ theta[..., :2], lin @ theta[..., 2:] + trans], dim=-1)


def crop_regions(faces: torch.Tensor, thetas: torch.Tensor, size: int) -> torch.Tensor:
    """Cut K regions from each face and resize them to ``size`` in one ``grid_sample`` call.

    faces (B, C, H, W); thetas (K, 2, 3) shared or (B, K, 2, 3) per face -> (B, K, C, size, size).
    """
    b, c = faces.shape[:2]
    if thetas.dim() == 3:
        thetas = thetas.unsqueeze(0).expand(b, -1, -1, -1)
    k = thetas.shape[1]
    grid = F.affine_grid(
        thetas.reshape(b * k, 2, 3).to(faces.dtype), [b * k, c, size, size], align_corners=False
    )  # (B*K, s, s, 2)
    grid = grid.view(b, k * size, size, 2)  # all K grids of a face stacked vertically
    out = F.grid_sample(faces, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.view(b, c, k, size, size).transpose(1, 2)  # (B, K, C, s, s)


def augment_matrices(
    batch: int,
    *,
    flip: bool = True,
    max_rotate: float = 10.0,
    scale: tuple[float, float] = (0.9, 1.1),
    max_translate: float = 0.08,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random per-face affine transforms (B, 2, 3): horizontal flip, rotation, zoom, shift.

    Output-to-input mapping in normalised coordinates (what ``affine_grid`` takes); a zoom > 1
    shows a smaller part of the face, larger.
    """
    u = torch.rand(batch, 5, generator=generator)
    angle = (u[:, 0] * 2 - 1) * math.radians(max_rotate)
    zoom = scale[0] + (scale[1] - scale[0]) * u[:, 1]
    tx = (u[:, 2] * 2 - 1) * max_translate * 2  # fractions of the face -> normalised units
    ty = (u[:, 3] * 2 - 1) * max_translate * 2
    sx = torch.where(u[:, 4] < 0.5, -1.0, 1.0) if flip else torch.ones(batch)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    return torch.stack(
        [
            torch.stack([cos * sx, -sin, tx], dim=-1),
            torch.stack([sin * sx, cos, ty], dim=-1),
        ],
        dim=-2,
    )


def invert_points(augment: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Where input points (B, P, 2, face fractions) land in the augmented view (face fractions)."""
    lin, trans = augment[:, :, :2], augment[:, :, 2]
    p = points * 2 - 1  # normalised
    q = torch.linalg.solve(lin.unsqueeze(1), (p - trans.unsqueeze(1)).unsqueeze(-1)).squeeze(-1)
    return (q + 1) / 2
