"""CM, compression: a face region compressed twice (re-quantised on the JPEG 8x8 block-DCT grid)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from interceptor.inputs import InputKind
from interceptor.jpeg import LUMA_TABLE
from interceptor.models.blocks import ConvBranch, SpecialistModule
from interceptor.models.filters import BlockDCT, full_precision, local_mean, luma, pad_to_multiple
from interceptor.models.registry import register_specialist
from interceptor.pseudo_fakes import RECOMPRESSION
from interceptor.schema import ModelConfig

QUANT_SCALES = (1.0, 2.0, 3.0, 4.0, 6.0)  # multiples of the JPEG table tested for a quantisation lattice
BANDS = 3  # AC frequency bands (u + v in 1-3, 4-7, 8-14) the lattice evidence is averaged over


def band_weights() -> Tensor:
    """(BANDS, 64): the mean over the AC coefficients of each band (low, mid, high frequency)."""
    u, v = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    order = (u + v).flatten()
    members = torch.stack([(order >= 1) & (order <= 3), (order >= 4) & (order <= 7), order >= 8]).float()
    return members / members.sum(dim=1, keepdim=True)


@register_specialist("cm")
class CompressionModule(SpecialistModule):
    """Four branches of 10 channels on the 8x8 block DCT of the luma (0-255 units): 40 x 7 x 7 = 1960 features.

    - coefficients: the DCT coefficient analyzer, log magnitude of the 64 coefficients of every block;
    - quantization: quantisation artifact detector, per frequency band the mean of cos(2 pi c / step) for steps
      that are multiples of the JPEG table (1 where the coefficients sit on that lattice), and the share of
      coefficients quantised to zero;
    - block_boundaries: luma gradients |dx|, |dy| rearranged so each of the 64 positions of an 8x8 cell is a
      channel: a block edge shows as a strong column or row;
    - level: compression level estimator, the local share of zeroed coefficients per frequency (which
      frequencies a quantiser removed gives its quality).
    """

    input_kind = InputKind.FRAME
    vote_weight = 2.0
    relative_cost = 1.0
    widths = {"coefficients": 10, "quantization": 10, "block_boundaries": 10, "level": 10}
    pseudo_fake = RECOMPRESSION

    def __init__(self, config: ModelConfig):
        widths = self.widths
        super().__init__({
            "coefficients": ConvBranch(64, widths["coefficients"], hidden=32, stride=1),
            "quantization": ConvBranch(BANDS * (len(QUANT_SCALES) + 1), widths["quantization"], stride=1),
            "block_boundaries": ConvBranch(128, widths["block_boundaries"], hidden=32, stride=1),
            "level": ConvBranch(64, widths["level"], kernel_size=1, hidden=32, stride=1),
        })
        self.dct = BlockDCT()
        self.register_buffer("table", torch.tensor(LUMA_TABLE, dtype=torch.float32).reshape(1, 64, 1, 1),
                             persistent=False)
        self.register_buffer("scales", torch.tensor(QUANT_SCALES), persistent=False)
        self.register_buffer("bands", band_weights(), persistent=False)

    @full_precision
    def signals(self, image: Tensor) -> dict[str, Tensor]:
        y = pad_to_multiple(luma(image) * 255, 8)
        coef = self.dct(y - 128)  # (B, 64, H/8, W/8)
        steps = self.table[:, None] * self.scales.view(1, -1, 1, 1, 1)  # (1, scales, 64, 1, 1)
        lattice = torch.cos(2 * torch.pi * coef[:, None] / steps)  # (B, scales, 64, h, w)
        zeroed = (coef.abs() < 0.5 * self.table).float()
        per_band = torch.einsum("bskhw,nk->bsnhw", torch.cat([lattice, zeroed[:, None]], dim=1), self.bands)
        dx = F.pad((y[..., :, 1:] - y[..., :, :-1]).abs(), (0, 1))
        dy = F.pad((y[..., 1:, :] - y[..., :-1, :]).abs(), (0, 0, 0, 1))
        gradients = F.pixel_unshuffle(torch.cat([dx, dy], dim=1), 8)
        return {
            "coefficients": torch.log1p(coef.abs()),
            "quantization": per_band.flatten(1, 2),
            "block_boundaries": torch.log1p(gradients),
            "level": local_mean(zeroed, 3),
        }
