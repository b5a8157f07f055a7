"""The processes of a training run: this process's rank, its device, and sums over every process.

One process trains alone; ``torchrun --nproc_per_node N`` starts N, each training on its shard of every
epoch with DistributedDataParallel (:mod:`fercurate.ran.train`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from fercurate.errors import InputError
from fercurate.ran.config import TrainConfig


@dataclass
class Dist:
    """This process's place among the processes of a run (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def init_distributed(device_kind: str) -> Dist:
    """Join the process group torchrun set up (NCCL on GPUs, gloo on CPU); a single process needs none."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        # rank 0 validates alone at the end of every epoch while the others wait: allow it time on a CPU
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo", timeout=timedelta(hours=2))
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def train_device(cfg: TrainConfig, local_rank: int) -> torch.device:
    """The device a run's ``--device`` names (``auto``: this process's GPU, else the CPU)."""
    if cfg.device == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda requested but no CUDA GPU is available (use --device cpu or auto)")
    dev = torch.device(cfg.device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev


def reduce_stats(stats: dict[str, float], d: Dist, device: torch.device) -> dict[str, float]:
    """An epoch's running sums (loss, ce, rb, correct, seen) over every process."""
    if d.world == 1:
        return stats
    keys = ["loss", "ce", "rb", "correct", "seen"]
    t = torch.tensor([float(stats[k]) for k in keys], dtype=torch.float64,
                     device=device if device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist()))
