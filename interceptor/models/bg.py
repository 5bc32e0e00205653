"""BG, background and lighting: a face lit from another direction or in another colour than its scene."""

from __future__ import annotations

import torch
from torch import Tensor

from interceptor.inputs import InputKind
from interceptor.models.blocks import ConvBranch, SpecialistModule
from interceptor.models.filters import GaussianBlur, Sobel, full_precision, luma
from interceptor.models.registry import register_specialist
from interceptor.pseudo_fakes import RELIGHTING
from interceptor.schema import ModelConfig


def context_mask(image: Tensor, margin: float) -> Tensor:
    """(1, 1, H, W): 1 on the context ring of a face crop, 0 on the face box at its centre.

    A crop with ``margin`` context per side (as a fraction of the face box side) has its face box from
    ``margin / (1 + 2 margin)`` to ``(1 + margin) / (1 + 2 margin)`` of each side.
    """
    height, width = image.shape[-2:]
    lo, hi = margin / (1 + 2 * margin), (1 + margin) / (1 + 2 * margin)
    ys = (torch.arange(height, device=image.device) + 0.5) / height
    xs = (torch.arange(width, device=image.device) + 0.5) / width
    inside_y = (ys >= lo) & (ys < hi)
    inside_x = (xs >= lo) & (xs < hi)
    face = inside_y[:, None] & inside_x[None, :]
    return (~face).float()[None, None]


def against_context(x: Tensor, ring: Tensor) -> Tensor:
    """``x`` minus its mean over the context ring ``(1, 1, H, W)``, per image and channel: the face measured
    against its scene."""
    context = (x * ring).sum(dim=(-2, -1), keepdim=True) / ring.sum().clamp_min(1)
    return x - context


@register_specialist("bg")
class BackgroundModule(SpecialistModule):
    """Four branches of 11 channels on the crop with its context margin: 44 x 7 x 7 = 2156 features.

    Every signal comes with its offset from the context ring's mean and the ring mask itself, so the branches
    see the face against its surroundings:

    - texture (7x7 convolutions): luma and its high-pass magnitude;
    - lighting (5x5): the direction of the shading gradient (Sobel of the blurred log luma);
    - shadow (9x9): the low-passed log luma (where the shadows fall);
    - colour (3x3): colour temperature as log R/G and log B/G.
    """

    input_kind = InputKind.FRAME
    vote_weight = 1.0
    relative_cost = 1.0
    widths = {"texture": 11, "lighting": 11, "shadow": 11, "colour": 11}
    pseudo_fake = RELIGHTING

    def __init__(self, config: ModelConfig):
        super().__init__({
            "texture": ConvBranch(5, self.widths["texture"], kernel_size=7),
            "lighting": ConvBranch(5, self.widths["lighting"], kernel_size=5),
            "shadow": ConvBranch(3, self.widths["shadow"], kernel_size=9),
            "colour": ConvBranch(5, self.widths["colour"], kernel_size=3),
        })
        self.margin = config.context_margin
        self.shading = GaussianBlur(2.0)
        self.sobel = Sobel()

    @full_precision
    def signals(self, image: Tensor) -> dict[str, Tensor]:
        eps = 1 / 255
        ring = context_mask(image, self.margin)
        y = luma(image)
        detail = (y - self.shading(y)).abs()
        shading = self.shading(torch.log(y + eps))
        gradient = self.sobel(shading)
        r, g, b = (torch.log(c + eps) for c in image.unbind(dim=1))
        chroma = torch.stack([r - g, b - g], dim=1)
        texture = torch.cat([y, detail], dim=1)
        ring_channel = ring.expand(image.shape[0], -1, -1, -1)
        return {
            "texture": torch.cat([texture, against_context(texture, ring), ring_channel], dim=1),
            "lighting": torch.cat([gradient, against_context(gradient, ring), ring_channel], dim=1),
            "shadow": torch.cat([shading, against_context(shading, ring), ring_channel], dim=1),
            "colour": torch.cat([chroma, against_context(chroma, ring), ring_channel], dim=1),
        }
