"""Plain PyTorch copies of hatcl's MLP, CNN and ResNet-18 (no hatcl parts), for wrap's tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PlainMLP(nn.Module):
    """Linear -> ReLU per hidden layer, as MLPBackbone without batch norm."""

    def __init__(self, input_dim: int = 64, hidden=(12, 10), dropout: float = 0.0) -> None:
        super().__init__()
        dims = (input_dim, *hidden)
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.relu = nn.ReLU()  # one module used at every layer: wrap copies it per place
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        hidden = x.flatten(1)
        for linear in self.linears:
            hidden = self.dropout(self.relu(linear(hidden)))
        return hidden


class PlainCNN(nn.Module):
    """CNNBackbone's layers: conv (same padding) -> ReLU -> 2x2 max pool -> dropout, then fc."""

    def __init__(
        self, in_channels=1, side=8, channels=(4, 6), kernels=(4, 3), fc=(10, 8), dropout=(0.2, 0.5)
    ):
        super().__init__()
        self.convs = nn.ModuleList()
        self.pads = []
        previous = in_channels
        for out, kernel in zip(channels, kernels):
            self.convs.append(nn.Conv2d(previous, out, kernel))
            before = (kernel - 1) // 2
            self.pads.append((before, kernel - 1 - before, before, kernel - 1 - before))
            side //= 2
            previous = out
        dims = (channels[-1] * side * side, *fc)
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.pool = nn.MaxPool2d(2)
        self.conv_drop = nn.Dropout(dropout[0])
        self.fc_drop = nn.Dropout(dropout[1])

    def forward(self, x):
        for conv, pad in zip(self.convs, self.pads):
            x = self.conv_drop(self.pool(torch.relu(conv(F.pad(x, pad)))))
        x = torch.flatten(x, 1)
        for linear in self.linears:
            x = self.fc_drop(F.relu(linear(x)))
        return x


class PlainBlock(nn.Module):
    def __init__(self, cin, cout, stride, bias):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=bias)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=bias)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=bias)
            self.shortcut_bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut is not None:
            return F.relu(out + self.shortcut_bn(self.shortcut(x)))
        return F.relu(out + x)


class PlainResNet(nn.Module):
    """ResNet-18 with the small-input stem, as ResNetBackbone(small_input=True)."""

    def __init__(self, in_channels=3, width=4, num_blocks=(1, 1, 1, 1)):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(width)
        blocks, previous = [], width
        for stage, count in enumerate(num_blocks):
            channels = width * 2**stage
            for index in range(count):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(PlainBlock(previous, channels, stride, bias=False))
                previous = channels
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem(x)))
        return self.pool(self.blocks(x)).flatten(1)


def make_mlp(*, input_shape, hidden=(12, 10)):
    """Factory for ``backbone=custom`` (reads the input shape)."""
    import math

    return PlainMLP(input_dim=math.prod(input_shape), hidden=tuple(hidden))


def make_cnn(*, input_shape, channels=(4, 6), kernels=(4, 3), fc=(10, 8)):
    """Factory for ``backbone=custom``."""
    return PlainCNN(input_shape[0], input_shape[1], tuple(channels), tuple(kernels), tuple(fc))


def make_resnet(*, input_shape, width=4):
    """Factory for ``backbone=custom``."""
    return PlainResNet(input_shape[0], width)


def not_a_module(**kwargs):
    """A factory returning the wrong type."""
    return "a string"


class NormedMLP(nn.Module):
    """Linear -> LayerNorm -> GELU -> Linear, with a learned output scale (raw parameter)."""

    def __init__(self, input_dim: int, hidden: int = 16) -> None:
        super().__init__()
        self.fc1, self.norm = nn.Linear(input_dim, hidden), nn.LayerNorm(hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.scale = nn.Parameter(torch.ones(hidden))

    def forward(self, x):
        return F.relu(self.fc2(F.gelu(self.norm(self.fc1(x.flatten(1)))))) * self.scale


def make_normed_mlp(*, input_shape, hidden=16):
    """Factory for ``backbone=custom`` with parameters HAT cannot mask."""
    import math

    return NormedMLP(math.prod(input_shape), hidden)
