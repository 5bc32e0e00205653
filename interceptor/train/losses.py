"""Classification losses: cross-entropy, focal, and class-weighted cross-entropy."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("ce", "focal", "weighted_ce")


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017) on 2-class logits: ``-(1 - p_t)^gamma log p_t``, optionally class-weighted."""

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None):
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=-1)
        log_pt = log_p.gather(1, target[:, None]).squeeze(1)
        loss = -((1 - log_pt.exp()) ** self.gamma) * log_pt
        if self.weight is not None:
            loss = loss * self.weight[target]
            return loss.sum() / self.weight[target].sum()
        return loss.mean()


def class_weights(counts: Sequence[int]) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1: ``N / (K * n_k)``."""
    counts_t = torch.as_tensor(counts, dtype=torch.float32)
    if (counts_t <= 0).any():
        raise ValueError(f"class-weighted loss needs samples of every class, got counts {list(counts)}")
    return counts_t.sum() / (len(counts_t) * counts_t)


def build_loss(name: str, class_counts: Sequence[int] | None = None, focal_gamma: float = 2.0,
               balance: str = "stream") -> nn.Module:
    """The loss named by config (``train.loss``). Class weights from the manifest counts apply to ``weighted_ce``,
    and to every loss under ``data.balance=loss`` (the loss, not the sampler, then balances the classes)."""
    if name not in LOSSES:
        raise ValueError(f"train.loss: unknown loss {name!r} (choose from {', '.join(LOSSES)})")
    weight = None
    if name == "weighted_ce" or balance == "loss":
        if class_counts is None:
            raise ValueError(f"train.loss={name} with data.balance={balance} needs class counts from the shard "
                             "manifests")
        weight = class_weights(class_counts)
    if name == "focal":
        return FocalLoss(gamma=focal_gamma, weight=weight)
    return nn.CrossEntropyLoss(weight=weight)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
                      hard_loss: nn.Module, temperature: float, alpha: float) -> torch.Tensor:
    """Hinton et al. (2015): ``alpha`` T^2 KL(teacher || student) at temperature T, plus ``1 - alpha`` of the
    labels' loss."""
    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits.float() / t, dim=-1), F.softmax(teacher_logits.float() / t, dim=-1),
                    reduction="batchmean") * t * t
    return alpha * soft + (1 - alpha) * hard_loss(student_logits.float(), target)
