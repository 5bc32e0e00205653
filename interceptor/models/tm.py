"""TM, temporal consistency: frame-to-frame jitter and flicker of the face region."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interceptor.inputs import InputKind
from interceptor.models.blocks import ConvBranch, FrameEncoder, SpecialistModule, temporal_stats
from interceptor.models.filters import GaussianBlur, full_precision, local_mean, luma
from interceptor.models.registry import register_specialist
from interceptor.pseudo_fakes import TEMPORAL_JITTER
from interceptor.schema import ModelConfig

_EPS = 1 / 255


class TemporalConvBranch(nn.Module):
    """Motion features: per-frame CNN features, a temporal convolution across frames, statistics over time."""

    def __init__(self, out_channels: int, width: int = 16):
        super().__init__()
        self.encoder = FrameEncoder(1, width)
        # A (3, 1) convolution over (time, pixels): 4-D weights keep the model convertible to channels_last.
        self.temporal = nn.Sequential(nn.Conv2d(width, width, (3, 1), padding=(1, 0), bias=False),
                                      nn.BatchNorm2d(width), nn.SiLU(inplace=True))
        self.head = ConvBranch(3 * width, out_channels, stride=2)
        self.out_channels = out_channels

    def forward(self, clip: Tensor) -> Tensor:
        features = self.encoder(clip).transpose(1, 2)  # (B, C, T, h, w)
        mixed = self.temporal(features.flatten(3)).unflatten(3, features.shape[3:])
        return self.head(temporal_stats(mixed.transpose(1, 2)))


class FeatureCorrelationBranch(nn.Module):
    """Motion features: cosine correlation of per-frame features between consecutive frames over a 3x3
    neighbourhood of displacements (a local cost volume), summarised over time."""

    def __init__(self, out_channels: int, width: int = 16, radius: int = 1):
        super().__init__()
        self.encoder = FrameEncoder(1, width, stride=2)
        self.radius = radius
        displacements = (2 * radius + 1) ** 2
        self.head = ConvBranch(3 * displacements, out_channels, stride=2)
        self.out_channels = out_channels

    def forward(self, clip: Tensor) -> Tensor:
        features = F.normalize(self.encoder(clip), dim=2)
        current, following = features[:, :-1], features[:, 1:]
        r = self.radius
        padded = F.pad(following.flatten(0, 1), (r, r, r, r), mode="replicate").unflatten(0, following.shape[:2])
        height, width = features.shape[-2:]
        volume = torch.stack([(current * padded[..., dy:dy + height, dx:dx + width]).sum(dim=2)
                              for dy in range(2 * r + 1) for dx in range(2 * r + 1)], dim=2)  # (B, T-1, D, h, w)
        return self.head(temporal_stats(volume))


@register_specialist("tm")
class TemporalModule(SpecialistModule):
    """Four branches of 13 channels over the clip's T frames: 52 x 7 x 7 = 2548 features.

    - differences: frame-to-frame luma differences, their mean, spread and maximum over time and the net
      drift (jitter moves back and forth, real motion drifts);
    - motion: per-frame CNN features through a temporal convolution (see :class:`TemporalConvBranch`);
    - correlation: a local cost volume between consecutive frames' features (see
      :class:`FeatureCorrelationBranch`);
    - flicker: temporal artifact detection over the whole clip: relative temporal spread of the low-passed
      luma (brightness flicker) and of the detail energy, and the back-and-forth share of the change
      (second temporal difference over the first).
    """

    input_kind = InputKind.CLIP
    vote_weight = 1.0
    relative_cost = 2.0
    widths = {"differences": 13, "motion": 13, "correlation": 13, "flicker": 13}
    pseudo_fake = TEMPORAL_JITTER

    def __init__(self, config: ModelConfig):
        widths = self.widths
        super().__init__({
            "differences": ConvBranch(4, widths["differences"]),
            "motion": TemporalConvBranch(widths["motion"]),
            "correlation": FeatureCorrelationBranch(widths["correlation"]),
            "flicker": ConvBranch(4, widths["flicker"]),
        })
        self.blur = GaussianBlur(2.0)

    @full_precision
    def signals(self, clip: Tensor) -> dict[str, Tensor]:
        batch, frames = clip.shape[:2]
        y = luma(clip)  # (B, T, 1, H, W)
        change = y[:, 1:] - y[:, :-1]
        differences = torch.cat([temporal_stats(change.abs()), change.mean(dim=1).abs()], dim=1)
        low = self.blur(y.flatten(0, 1))
        detail = local_mean((y.flatten(0, 1) - low).abs(), 5)
        low, detail = low.unflatten(0, (batch, frames)), detail.unflatten(0, (batch, frames))
        mean_change = change.abs().mean(dim=1)
        if frames > 2:
            acceleration = (change[:, 1:] - change[:, :-1]).abs().mean(dim=1)
        else:  # two frames have no second difference
            acceleration = torch.zeros_like(mean_change)
        flicker = torch.cat([
            low.std(dim=1, unbiased=False) / (low.mean(dim=1) + _EPS),
            detail.std(dim=1, unbiased=False) / (detail.mean(dim=1) + _EPS),
            acceleration,
            acceleration / (mean_change + _EPS),
        ], dim=1)
        return {"differences": differences, "motion": y, "correlation": y, "flicker": flicker}
