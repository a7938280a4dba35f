"""A small plain-PyTorch ViT for ``backbone=custom`` (the results page's ViT rows).

``hatcl run backbone=custom backbone.target=examples.vit_nets:make_vit
backbone.unmasked=per_task ...`` from the repository root: the patch-embedding conv and every
Linear (q, k, v split from the fused qkv) get HAT masks; layer norms, the class token and the
positional embedding get one copy per task.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    """Pre-norm block: x + proj(attention(norm(x))), then x + fc2(gelu(fc1(norm(x))))."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.heads, self.norm1, self.norm2 = heads, nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5).softmax(-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    """Conv patch embedding, class token, positional embedding, blocks, final norm, cls out."""

    def __init__(self, *, input_shape, patch: int, dim: int, heads: int, depth: int, hidden: int):
        super().__init__()
        channels, height, width = input_shape
        tokens = (height // patch) * (width // patch) + 1
        self.embed = nn.Conv2d(channels, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(0.02 * torch.randn(1, tokens, dim))
        self.blocks = nn.Sequential(*(Block(dim, heads, hidden) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        return self.norm(self.blocks(x))[:, 0]


def make_vit(*, input_shape, patch=4, dim=64, heads=4, depth=2, hidden=128):
    """The results page's ViT: 28x28 images give 49 patches of 4x4 pixels and a class token."""
    return ViT(
        input_shape=tuple(input_shape), patch=patch, dim=dim, heads=heads, depth=depth,
        hidden=hidden,
    )
