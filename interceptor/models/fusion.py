"""Attention fusion of the backbone's and the specialist module's feature maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interceptor.models.blocks import GRID


class AttentionFusion(nn.Module):
    """Multi-head self-attention over backbone and specialist tokens, read out through a class token.

    Both maps are pooled to the 7x7 grid; every cell becomes a token projected to ``dim``, with a learned
    position embedding per grid cell and stream (so the attention can compare the same place in both streams
    and the face against its surroundings). One pre-norm transformer block mixes the 1 + 2 * 49 tokens; the
    class token's output is the fused feature vector of width ``dim``.
    """

    def __init__(self, backbone_channels: int, specialist_channels: int, dim: int = 256, heads: int = 8,
                 dropout: float = 0.1):
        super().__init__()
        self.backbone_proj = nn.Linear(backbone_channels, dim)
        self.specialist_proj = nn.Linear(specialist_channels, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.zeros(1, 1 + 2 * GRID * GRID, dim))
        nn.init.trunc_normal_(self.position, std=0.02)
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim))
        self.out_norm = nn.LayerNorm(dim)
        self.dim = dim

    @staticmethod
    def _tokens(feature_map: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(feature_map, GRID).flatten(2).transpose(1, 2)  # (B, 49, C)

    def forward(self, backbone_map: Tensor, specialist_map: Tensor) -> Tensor:
        backbone = self.backbone_proj(self._tokens(backbone_map))
        specialist = self.specialist_proj(self._tokens(specialist_map))
        cls = self.cls_token.expand(backbone.shape[0], -1, -1).to(backbone.dtype)
        x = torch.cat([cls, backbone, specialist], dim=1) + self.position.to(backbone.dtype)
        h = self.attn_norm(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        x = x + self.mlp(self.mlp_norm(x))
        return self.out_norm(x[:, 0])
