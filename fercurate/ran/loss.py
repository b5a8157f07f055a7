"""RAN's losses: cross-entropy (hard labels or vote distributions) plus the region-biased loss.

Region-biased loss (paper Eq. 5): L_RB = max(0, alpha - (mu_max - mu_0)), where mu_0 is the whole face's
self-attention weight and mu_max the largest weight among the crops: at least one region should get
``alpha`` more attention than the whole face. The paper uses alpha = 0.02 and adds L_RB to the
cross-entropy with weight 1; the authors' public code uses a margin of 0.1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fercurate.ran.config import OFFICIAL_CODE_MARGIN, PAPER_MARGIN

__all__ = ["OFFICIAL_CODE_MARGIN", "PAPER_MARGIN", "classification_loss", "ran_loss", "rb_loss"]


def rb_loss(mu: torch.Tensor, margin: float = PAPER_MARGIN) -> torch.Tensor:
    """Mean over the batch of max(0, margin - (max_{i>=1} mu_i - mu_0)).   mu (B, k+1), crop 0 = whole face."""
    mu_0 = mu[:, 0]  # (B,)
    mu_max = mu[:, 1:].max(dim=1).values  # (B,)
    return F.relu(margin - (mu_max - mu_0)).mean()


def classification_loss(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy: ``target`` is class indices (B,) or a probability distribution per row (B, K)."""
    if target.dim() == 2:
        return -(target * F.log_softmax(logits.float(), dim=1)).sum(1).mean()
    return F.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)


def ran_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    mu: torch.Tensor | None,
    *,
    margin: float = PAPER_MARGIN,
    rb_weight: float = 1.0,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Total loss = CE + rb_weight * L_RB (L_RB = 0 for models without attention); returns (total, ce, rb)."""
    ce = classification_loss(logits, target, label_smoothing)
    rb = rb_loss(mu.float(), margin) if mu is not None and rb_weight else torch.zeros((), device=logits.device)
    return ce + rb_weight * rb, ce, rb
