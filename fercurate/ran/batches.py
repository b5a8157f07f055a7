"""From decoded faces to model input: the epoch order, the batch loader and the training augmentation.

* :func:`epoch_batches` gives each process its index batches of an epoch, in an order that depends only
  on (seed, epoch), so a resumed run sees the same batches.
* :class:`BatchLoader` yields ``(faces uint8 (B, 3, S, S), indices)`` for a list of index batches, from the
  cache (in memory) or by decoding in worker processes.
* :func:`prepare_batch` turns a uint8 batch into float faces in [0, 1] at the model's input size, with
  the training augmentation (flip, rotation, zoom, shift, random erasing) drawn from an explicit
  generator so that runs are reproducible and resumable.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fercurate.ran.crops import augment_matrices, box_thetas, crop_regions, invert_points, landmark_boxes, landmark_centres, random_boxes
from fercurate.faces.store import check_align, decode_face
from fercurate.ran.data import Samples


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The training order of epoch ``epoch``: a permutation that depends only on (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def epoch_batches(
    n: int, batch_size: int, seed: int, epoch: int, *, rank: int = 0, world: int = 1, shuffle: bool = True
) -> list[np.ndarray]:
    """This rank's index batches for one epoch. ``batch_size`` is per process.

    The permutation is padded (wrapping round) so every rank gets the same number of full batches;
    a trailing batch smaller than 2 is dropped (BatchNorm needs 2 samples).
    """
    order = epoch_order(n, seed, epoch) if shuffle else np.arange(n)
    per_rank = -(-n // world)
    if per_rank * world > n:
        order = np.concatenate([order, order[: per_rank * world - n]])
    mine = order[rank::world]
    batches = [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
    if batches and len(batches[-1]) < 2 and shuffle:
        batches.pop()
    return batches


class _DecodeDataset(torch.utils.data.Dataset):
    """Decodes faces on the fly (no cache): used with DataLoader worker processes."""

    def __init__(self, paths: list[str], bboxes: np.ndarray, size: int, align: str = "bbox") -> None:
        self.paths, self.bboxes, self.size, self.align = paths, bboxes, size, align

    def __len__(self) -> int:
        return len(self.paths)

    def __getitems__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        faces = np.stack([decode_face(self.paths[i], self.bboxes[i], self.size, self.align)[0] for i in idx])
        return torch.from_numpy(faces), torch.as_tensor(np.asarray(idx))


class _ArrayDataset(torch.utils.data.Dataset):
    """Slices of an in-memory or memory-mapped face array."""

    def __init__(self, faces: np.ndarray) -> None:
        self.faces = faces

    def __len__(self) -> int:
        return len(self.faces)

    def __getitems__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        order = np.asarray(idx)
        return torch.from_numpy(np.ascontiguousarray(self.faces[order])), torch.as_tensor(order)


def _first(batch):  # noqa: ANN001, ANN202 - DataLoader collate for __getitems__ datasets
    return batch


class BatchLoader:
    """Iterates ``(faces uint8 (B, 3, S, S), indices (B,))`` over given index batches.

    From the cache in memory, batches are sliced in this process (no workers needed); with
    ``workers`` > 0 a torch DataLoader prefetches them in worker processes (memory-mapped cache, or
    decoding from disk when there is no cache).
    """

    def __init__(self, batches: list[np.ndarray], *, faces: np.ndarray | None = None, samples: Samples | None = None,
                 size: int = 0, workers: int = 0, align: str = "bbox") -> None:
        if faces is None and samples is None:
            raise ValueError("BatchLoader needs faces or samples")
        self.batches = batches
        self.dataset = (_ArrayDataset(faces) if faces is not None
                        else _DecodeDataset(samples.paths, samples.bboxes, size, check_align(align)))
        self.workers = workers

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.workers <= 0:
            for b in self.batches:
                yield self.dataset.__getitems__(list(b))
            return
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=[list(b) for b in self.batches],
            num_workers=self.workers,
            collate_fn=_first,
            persistent_workers=False,
            prefetch_factor=4,
            multiprocessing_context="spawn" if isinstance(self.dataset, _DecodeDataset) else None,
        )
        yield from loader


@dataclass
class AugmentConfig:
    """Training augmentation (all drawn from the run's generator)."""

    flip: bool = True
    rotate: float = 10.0  # degrees, +-
    scale: tuple[float, float] = (0.9, 1.1)
    translate: float = 0.08  # fraction of the face, +-
    erase: float = 0.0  # probability of random erasing (a rectangle set to grey)
    enabled: bool = True


def prepare_batch(
    faces_u8: torch.Tensor,
    *,
    input_size: int,
    train: bool,
    augment: AugmentConfig,
    generator: torch.Generator | None,
    crops: str = "fixed",
    num_crops: int = 5,
    random_scale: tuple[float, float] = (0.7, 0.95),
    landmarks: torch.Tensor | None = None,
    landmark_scale: float = 0.5,
    landmark_clip: bool = False,
    eval_boxes: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 faces (B, 3, S, S) -> float faces in [0, 1] (B, 3, input, input) and per-face crop boxes.

    Boxes are None for fixed crops (the model's own); for random crops a fresh draw per face in
    training and ``eval_boxes`` at evaluation; for landmark crops squares around the landmarks,
    moved with the augmentation.
    """
    x = faces_u8.to(device, non_blocking=True).float().div_(255)
    b = x.shape[0]
    aug = None
    if train and augment.enabled:
        aug = augment_matrices(b, flip=augment.flip, max_rotate=augment.rotate, scale=augment.scale,
                               max_translate=augment.translate, generator=generator).to(device)
        theta = box_thetas(torch.tensor([[0.0, 0.0, 1.0, 1.0]], device=device), aug)  # (B, 1, 2, 3)
        x = crop_regions(x, theta, input_size)[:, 0]
        if augment.erase > 0:
            x = _random_erase(x, augment.erase, generator)
    elif x.shape[-1] != input_size:
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False, antialias=True)
    boxes = None
    if crops == "random":
        if train:
            boxes = random_boxes(b, num_crops, min_scale=random_scale[0], max_scale=random_scale[1], generator=generator)
        else:
            boxes = eval_boxes.unsqueeze(0).expand(b, -1, -1)
        boxes = boxes.to(device)
    elif crops == "landmark":
        centres = torch.as_tensor(landmark_centres(landmarks.numpy()), dtype=torch.float32)
        if aug is not None:
            centres = invert_points(aug.cpu(), centres)
        boxes = landmark_boxes(centres, landmark_scale, clip=landmark_clip).to(device)
    return x, boxes


def _random_erase(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Random erasing (Zhong et al. 2020): with probability p, a random rectangle becomes mid-grey."""
    b, _, h, w = x.shape
    u = torch.rand(b, 5, generator=generator)
    area = 0.02 + u[:, 0] * 0.2  # of the face
    aspect = torch.exp((u[:, 1] * 2 - 1) * 1.0)
    eh = (torch.sqrt(area * aspect) * h).clamp(1, h).long()
    ew = (torch.sqrt(area / aspect) * w).clamp(1, w).long()
    y0 = (u[:, 2] * (h - eh + 1)).long()
    x0 = (u[:, 3] * (w - ew + 1)).long()
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    inside = (ys >= y0.view(-1, 1, 1)) & (ys < (y0 + eh).view(-1, 1, 1)) & (xs >= x0.view(-1, 1, 1)) & (xs < (x0 + ew).view(-1, 1, 1))
    mask = (inside & (u[:, 4] < p).view(-1, 1, 1)).unsqueeze(1).to(x.device)
    return torch.where(mask, torch.full_like(x, 0.5), x)
