"""RR, resolution: a face down-scaled and up-scaled again (interpolation blur)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from interceptor.inputs import InputKind
from interceptor.models.blocks import ConvBranch, SpecialistModule
from interceptor.models.filters import FixedConv, Laplacian, LaplacianPyramid, Sobel, full_precision, local_mean, luma
from interceptor.models.registry import register_specialist
from interceptor.pseudo_fakes import RESAMPLING
from interceptor.schema import ModelConfig

RESCALE_FACTORS = (1.5, 2.0, 3.0)  # the upscaling detector re-interpolates at these factors
INTERPOLATION_LAGS = (1, 2, 3)  # lags of the second-derivative autocorrelation
_EPS = 1e-4


def log_energy(x: Tensor, size: int = 5) -> Tensor:
    return torch.log(local_mean(x.abs(), size) + _EPS)


def resample(x: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=x.shape[-1] > size[-1])


@register_specialist("rr")
class ResolutionModule(SpecialistModule):
    """Four branches of 9 channels on the luma: 36 x 7 x 7 = 1764 features.

    - pyramid: multi-scale analysis, the local energy of three Laplacian-pyramid bands and their log ratios
      (an up-scaled face has little energy in the finest band for its coarser ones);
    - upscaling: the residual of down- and up-scaling by 1.5, 2 and 3 (small where the face already went
      through such a round trip) and its log ratios;
    - sharpness: fixed Sobel gradient magnitude, |Laplacian| and their ratio (edge width);
    - interpolation: normalised autocorrelation of the horizontal and vertical second derivatives at lags 1-3
      (interpolated pixels are linear combinations of their neighbours).
    """

    input_kind = InputKind.FRAME
    vote_weight = 1.0
    relative_cost = 1.0
    widths = {"pyramid": 9, "upscaling": 9, "sharpness": 9, "interpolation": 9}
    pseudo_fake = RESAMPLING

    def __init__(self, config: ModelConfig):
        widths = self.widths
        super().__init__({
            "pyramid": ConvBranch(5, widths["pyramid"], stride=2),
            "upscaling": ConvBranch(2 * len(RESCALE_FACTORS) - 1, widths["upscaling"]),
            "sharpness": ConvBranch(3, widths["sharpness"]),
            "interpolation": ConvBranch(2 * len(INTERPOLATION_LAGS), widths["interpolation"]),
        })
        self.pyramid = LaplacianPyramid(levels=3)
        self.sobel = Sobel()
        self.laplacian = Laplacian()
        second = torch.tensor([[0.0, 0.0, 0.0], [1.0, -2.0, 1.0], [0.0, 0.0, 0.0]])
        self.second_derivative = FixedConv(torch.stack([second, second.T]))

    @full_precision
    def signals(self, image: Tensor) -> dict[str, Tensor]:
        y = luma(image)
        size = tuple(y.shape[-2:])
        bands = self.pyramid(y)
        half = tuple(bands[1].shape[-2:])
        band_energy = [resample(log_energy(band, 3), half) for band in bands]
        residuals = [log_energy(y - resample(resample(y, (max(1, round(size[0] / f)), max(1, round(size[1] / f)))),
                                             size)) for f in RESCALE_FACTORS]
        gradient = self.sobel(y).square().sum(dim=1, keepdim=True).sqrt()
        laplacian = self.laplacian(y).abs()
        d2 = self.second_derivative(y)  # (B, 2, H, W): d2/dx2, d2/dy2
        power = local_mean(d2 * d2, 9) + _EPS
        autocorrelation = [local_mean(d2 * torch.stack([d2[:, 0].roll(lag, -1), d2[:, 1].roll(lag, -2)], 1), 9) / power
                           for lag in INTERPOLATION_LAGS]
        return {
            "pyramid": torch.cat([*band_energy, band_energy[0] - band_energy[1], band_energy[1] - band_energy[2]], 1),
            "upscaling": torch.cat([*residuals, *(r - residuals[0] for r in residuals[1:])], dim=1),
            "sharpness": torch.cat([gradient, laplacian, laplacian / (gradient + 1 / 255)], dim=1),
            "interpolation": torch.cat(autocorrelation, dim=1),
        }
