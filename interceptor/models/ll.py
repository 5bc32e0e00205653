"""LL, low light: face exposure and sensor noise that disagree with a dark scene."""

from __future__ import annotations

import torch
from torch import Tensor

from interceptor.inputs import InputKind
from interceptor.models.blocks import ConvBranch, SpecialistModule
from interceptor.models.filters import GaussianBlur, Sobel, full_precision, local_mean, luma
from interceptor.models.registry import register_specialist
from interceptor.pseudo_fakes import EXPOSURE
from interceptor.schema import ModelConfig


@register_specialist("ll")
class LowLightModule(SpecialistModule):
    """Four branches of 8 channels on the luma Y of YCbCr: 32 x 7 x 7 = 1568 features.

    - luminance: Y with its local mean and standard deviation (9x9);
    - dark_noise: the high-pass residual of Y (sensor noise), also weighted by how dark its surroundings are;
    - gamma: log Y relative to the crop's mean log Y (exposure), and Y through gamma 0.5 and 2 (tone curve);
    - contrast: local Weber contrast (std / mean) and gradient magnitude over local mean.
    """

    input_kind = InputKind.FRAME
    vote_weight = 1.0
    relative_cost = 1.0
    widths = {"luminance": 8, "dark_noise": 8, "gamma": 8, "contrast": 8}
    pseudo_fake = EXPOSURE

    def __init__(self, config: ModelConfig):
        super().__init__({
            "luminance": ConvBranch(3, self.widths["luminance"]),
            "dark_noise": ConvBranch(3, self.widths["dark_noise"]),
            "gamma": ConvBranch(3, self.widths["gamma"]),
            "contrast": ConvBranch(2, self.widths["contrast"]),
        })
        self.blur = GaussianBlur(1.0)
        self.sobel = Sobel()

    @full_precision
    def signals(self, image: Tensor) -> dict[str, Tensor]:
        y = luma(image)
        mean = local_mean(y, 9)
        std = (local_mean(y * y, 9) - mean * mean).clamp_min(0).sqrt()
        residual = y - self.blur(y)
        darkness = (1 - mean).clamp(0, 1) ** 2
        log_y = torch.log(y + 1 / 255)
        gradient = self.sobel(y).square().sum(dim=1, keepdim=True).sqrt()
        eps = 1 / 255
        return {
            "luminance": torch.cat([y, mean, std], dim=1),
            "dark_noise": torch.cat([residual, residual.abs(), darkness * residual.abs()], dim=1),
            "gamma": torch.cat([log_y - log_y.mean(dim=(-2, -1), keepdim=True), y.sqrt(), y * y], dim=1),
            "contrast": torch.cat([std / (mean + eps), gradient / (mean + eps)], dim=1),
        }
