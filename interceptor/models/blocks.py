"""Learned building blocks shared by the specialist modules, and their common base class.

A specialist module is a front-end that turns its input into named signals (fixed signal-processing filters
from :mod:`interceptor.models.filters`; AV adds learned lip and audio encoders), and one small CNN branch per
signal. Every branch output is adaptive-pooled to a
7x7 grid and the branches are concatenated: the module's output is (B, C, 7, 7), C the sum of branch widths.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interceptor.inputs import InputKind

if TYPE_CHECKING:
    from interceptor.pseudo_fakes import PseudoFake

GRID = 7  # specialist outputs are pooled to GRID x GRID


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias), BatchNorm, SiLU; padding keeps the size at stride 1."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.SiLU(inplace=True),
        )


class ConvBranch(nn.Sequential):
    """One branch: ``depth`` convolutions of ``kernel_size`` (the first two may stride), then a 1x1 to width.

    ``stride`` is applied by the first two convolutions (each stride 2 when ``stride=4``), so large kernels run
    on downsampled maps.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, hidden: int = 16,
                 depth: int = 2, stride: int = 4):
        strides = {1: (1, 1), 2: (2, 1), 4: (2, 2)}[stride] + (1,) * (depth - 2)
        widths = (in_channels,) + (hidden,) * depth
        layers = [ConvBNAct(widths[i], hidden, kernel_size, strides[i]) for i in range(depth)]
        super().__init__(*layers, ConvBNAct(hidden, out_channels, 1))
        self.out_channels = out_channels


class FrameEncoder(nn.Module):
    """Two 3x3 convolutions applied to every frame of a clip: (B, T, C, H, W) to (B, T, width, H/s, W/s)."""

    def __init__(self, in_channels: int, width: int = 16, stride: int = 4):
        super().__init__()
        self.layers = nn.Sequential(ConvBNAct(in_channels, width, 3, 2), ConvBNAct(width, width, 3, stride // 2))
        self.width = width

    def forward(self, clip: Tensor) -> Tensor:
        batch, frames = clip.shape[:2]
        return self.layers(clip.flatten(0, 1)).unflatten(0, (batch, frames))


def temporal_stats(x: Tensor) -> Tensor:
    """(B, T, C, ...) to (B, 3C, ...): mean, standard deviation and maximum over time, stacked as channels."""
    std = x.std(dim=1, unbiased=False) if x.shape[1] > 1 else torch.zeros_like(x[:, 0])
    return torch.cat([x.mean(dim=1), std, x.amax(dim=1)], dim=1)


class SpecialistModule(nn.Module):
    """Base class of the specialist modules: fixed signals, one branch per signal, pooled and concatenated.

    A subclass declares its facts as class attributes (checked when it is registered, see
    :mod:`interceptor.models.registry`), builds its branches (a mapping from signal name to a module with an
    ``out_channels`` attribute) with the declared ``widths`` and implements :meth:`signals`, which returns the
    input of every branch by name.
    """

    name: ClassVar[str]  # set by register_specialist
    input_kind: ClassVar[InputKind]  # what the model takes
    vote_weight: ClassVar[float]  # weight in the agent's fixed vote
    relative_cost: ClassVar[float]  # training step time relative to a frame specialist's
    widths: ClassVar[dict[str, int]]  # output channels of each branch, by signal name
    pseudo_fake: ClassVar[PseudoFake | None]  # pseudo-fakes of the specialist's family (interceptor/pseudo_fakes.py)

    def __init__(self, branches: dict[str, nn.Module]):
        super().__init__()
        built = {name: branch.out_channels for name, branch in branches.items()}
        if built != dict(self.widths):
            raise ValueError(f"{type(self).__qualname__}: its branches {built} are not its declared widths "
                             f"{self.widths}")
        self.branches = nn.ModuleDict(branches)
        self.out_channels = sum(branch.out_channels for branch in branches.values())

    @property
    def features(self) -> int:
        """Flattened size of the module's output."""
        return self.out_channels * GRID * GRID

    def signals(self, **inputs: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def forward(self, **inputs: Tensor) -> Tensor:
        signals = self.signals(**inputs)
        maps = [F.adaptive_avg_pool2d(branch(signals[name]), GRID) for name, branch in self.branches.items()]
        return torch.cat(maps, dim=1)
