"""Plain PyTorch convnets written with the common idioms, generated from a few choices.

Each network is what a user writes (no hatcl parts); tests/wrap/test_wrap_idioms.py wraps it and
compares the result with the same network masked by hand.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
AVG = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}
MAX = {1: nn.AdaptiveMaxPool1d, 2: nn.AdaptiveMaxPool2d, 3: nn.AdaptiveMaxPool3d}
SIDE = {1: 12, 2: 8, 3: 6}
"""The input side per conv dimensionality (kept small)."""
CHANNELS, KERNEL, OUT = 4, 3, 5

TAILS = (
    "flatten_module",
    "flatten_function",
    "flatten_method",
    "view_size",
    "reshape_shape",
    "mean",
    "amax",
    "avg_pool_module",
    "max_pool_module",
    "adaptive_2_module",
)
"""How the conv's output becomes (batch, features)."""


def tail_positions(tail: str, dim: int, side: int) -> int:
    """Features per channel after ``tail`` on a ``side ** dim`` map (written out per tail)."""
    if tail.startswith("flatten") or tail in ("view_size", "reshape_shape"):
        return side**dim
    if tail == "adaptive_2_module":
        return 2**dim
    return 1


class ConvTail(nn.Module):
    """conv [-> batch norm] [-> ReLU] -> one tail idiom [-> Linear -> ReLU]."""

    def __init__(self, *, dim: int, norm: bool, act: bool, stride: int, tail: str, linear: bool):
        super().__init__()
        self.dim, self.act, self.tail = dim, act, tail
        self.conv = CONV[dim](2, CHANNELS, KERNEL, stride=stride)
        self.norm = NORM[dim](CHANNELS) if norm else None
        self.flatten = nn.Flatten()
        self.pool = {"avg_pool_module": AVG[dim](1), "max_pool_module": MAX[dim](1)}.get(
            tail, AVG[dim](2)
        )
        side = (SIDE[dim] - KERNEL) // stride + 1
        features = CHANNELS * tail_positions(tail, dim, side)
        self.fc = nn.Linear(features, OUT) if linear else None

    def forward(self, x):
        h = self.conv(x)
        if self.norm is not None:
            h = self.norm(h)
        if self.act:
            h = F.relu(h)
        h = self._tail(h)
        if self.fc is not None:
            h = torch.relu(self.fc(h))
        return h

    def _tail(self, h):
        spatial = tuple(range(2, 2 + self.dim))
        if self.tail == "flatten_module":
            return self.flatten(h)
        if self.tail == "flatten_function":
            return torch.flatten(h, 1)
        if self.tail == "flatten_method":
            return h.flatten(1)
        if self.tail == "view_size":
            return h.view(h.size(0), -1)
        if self.tail == "reshape_shape":
            return h.reshape(h.shape[0], -1)
        if self.tail == "mean":
            return h.mean(spatial)
        if self.tail == "amax":
            return h.amax(dim=spatial)
        return torch.flatten(self.pool(h), 1)


BLOCKS = ("conv", "conv_bn", "two_convs")
"""What an identity shortcut goes around."""


class Shortcut(nn.Module):
    """Stem conv -> BN -> ReLU [-> max pool], an identity shortcut around ``block``, a Linear.

    ``combine`` is ``relu(x + f(x))`` (``"add_then_relu"``) or ``x + relu(f(x))``
    (``"relu_then_add"``); ``pool`` is ``"before"`` or ``"after"`` the residual block.
    """

    def __init__(self, *, block: str, combine: str, pool: str):
        super().__init__()
        self.block, self.combine, self.pool_at = block, combine, pool
        self.stem = nn.Conv2d(1, CHANNELS, 3, padding=1)
        self.stem_bn = nn.BatchNorm2d(CHANNELS)
        self.pool = nn.MaxPool2d(2)
        self.conv1 = nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(CHANNELS) if block == "conv_bn" else None
        self.conv2 = nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1) if block == "two_convs" else None
        self.fc = nn.Linear(CHANNELS * 16, OUT)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem(x)))
        if self.pool_at == "before":
            x = self.pool(x)
        f = self.conv1(x)
        if self.bn1 is not None:
            f = self.bn1(f)
        if self.conv2 is not None:
            f = self.conv2(F.relu(f))
        x = F.relu(x + f) if self.combine == "add_then_relu" else x + F.relu(f)
        if self.pool_at == "after":
            x = self.pool(x)
        return self.fc(torch.flatten(x, 1))
