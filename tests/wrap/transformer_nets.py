"""Plain PyTorch transformers (no hatcl parts) for wrap's tests and the command line."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (the common ViT code)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(batch, tokens, dim)
        return self.proj(out)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x)) with GELU."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class TinyViT(nn.Module):
    """Conv patch embedding, class token, positional embedding, blocks, final norm, cls out."""

    def __init__(self, *, input_shape=(1, 8, 8), patch=4, dim=16, heads=2, depth=2, hidden=32):
        super().__init__()
        channels, side = input_shape[0], input_shape[1]
        self.embed = nn.Conv2d(channels, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(0.02 * torch.randn(1, (side // patch) ** 2 + 1, dim))
        self.blocks = nn.Sequential(*(Block(dim, heads, hidden) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        return self.norm(self.blocks(x))[:, 0]


class EncoderNet(nn.Module):
    """Linear token embedding of the image rows, then torch's own TransformerEncoderLayers."""

    def __init__(self, *, input_shape=(1, 8, 8), dim=16, heads=2, depth=2, norm_first=True):
        super().__init__()
        self.embed = nn.Linear(input_shape[-1], dim)
        self.layers = nn.Sequential(
            *(
                nn.TransformerEncoderLayer(
                    dim, heads, 32, dropout=0.0, batch_first=True, norm_first=norm_first
                )
                for _ in range(depth)
            )
        )

    def forward(self, x):
        return self.layers(self.embed(x.flatten(1, 2))).mean(1)


def make_vit(*, input_shape, dim=16, depth=2):
    """Factory for ``backbone=custom``."""
    return TinyViT(input_shape=tuple(input_shape), dim=dim, depth=depth)
