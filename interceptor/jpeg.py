"""JPEG's fixed transform and tables (ITU-T T.81): what CM's filters (:mod:`interceptor.models.filters`) look
for and the recompression pseudo-fake (:mod:`interceptor.pseudo_fakes`) makes."""

from __future__ import annotations

import math

import torch
from torch import Tensor

# The standard's example quantisation tables (Annex K), in 0-255 pixel units: luminance and chrominance.
LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61), (12, 12, 14, 19, 26, 58, 60, 55), (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62), (18, 22, 37, 56, 68, 109, 103, 77), (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101), (72, 92, 95, 98, 112, 100, 103, 99),
)
CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99), (18, 21, 26, 66, 99, 99, 99, 99), (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99), *((99,) * 8,) * 4,
)


def dct_matrix(n: int = 8) -> Tensor:
    """The orthonormal DCT-II matrix: row k is the k-th basis function."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None]
    basis = torch.cos((2 * i + 1) * k * math.pi / (2 * n)) * math.sqrt(2 / n)
    basis[0] /= math.sqrt(2)
    return basis.float()
