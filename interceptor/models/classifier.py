"""The classification head: a deep MLP with batch norm and dropout, two logits (index 1 = fake)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


class MLPClassifier(nn.Sequential):
    """Linear, BatchNorm1d, GELU, Dropout per hidden width, then a linear layer to ``classes`` logits."""

    def __init__(self, in_features: int, hidden: Sequence[int] = (512, 256), classes: int = 2, dropout: float = 0.3):
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(in_features, width), nn.BatchNorm1d(width), nn.GELU(), nn.Dropout(dropout)]
            in_features = width
        super().__init__(*layers, nn.Linear(in_features, classes))
