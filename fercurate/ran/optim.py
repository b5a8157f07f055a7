"""What the optimiser steps and at which rate: the learning-rate schedule and the frozen backbone stages."""

from __future__ import annotations

import math

import torch

from fercurate.ran.config import TrainConfig


class LRSchedule:
    """lr(step) = base_lr * warmup * (step decay at milestones | cosine), computed from the global step."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> None:
        self.optimizer = optimizer
        self.cfg = cfg
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.step_count = 0

    def factor(self, step: int) -> float:
        epoch = step / self.steps_per_epoch
        if self.cfg.schedule == "step":
            f = self.cfg.gamma ** sum(int(epoch) >= m for m in self.cfg.milestones)
        else:
            f = 0.5 * (1 + math.cos(math.pi * min(1.0, epoch / self.cfg.epochs)))
        if self.cfg.warmup_epochs > 0 and epoch < self.cfg.warmup_epochs:
            f *= (step + 1) / (self.cfg.warmup_epochs * self.steps_per_epoch)
        return f

    def apply(self) -> float:
        """Set the lr for the next optimiser step; returns it."""
        lr = self.cfg.lr * self.factor(self.step_count)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def advance(self) -> None:
        self.step_count += 1

    def state_dict(self) -> dict[str, int]:
        return {"step_count": self.step_count, "steps_per_epoch": self.steps_per_epoch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step_count = int(state["step_count"])


def freeze_stages(model: torch.nn.Module, stages: list[str]) -> list[torch.nn.Module]:
    """Stop gradients (and BatchNorm statistic updates) in the named backbone stages; returns their modules."""
    bb = model.backbone
    parts = {"stem": [bb.conv1, bb.bn1], "layer1": [bb.layer1], "layer2": [bb.layer2], "layer3": [bb.layer3],
             "layer4": [bb.layer4]}
    modules = [m for s in stages for m in parts[s]]
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(False)
    return modules
