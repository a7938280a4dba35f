"""Plain networks concatenating units along the channel or feature dim (DenseNet idioms).

Each forward multiplies every weighted layer's pre-activation by ``self.masks[name]`` when
``masks`` is set: the hand-written masked equivalent the wrapped network must equal (with
``masks = None``, as wrap traces it, the forward is the plain network).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SIDE = 8
SOURCES = ("two_convs", "two_equal_convs", "conv_and_input", "dense2", "dense3")
TAILS = ("conv", "flatten", "pool_flatten", "mean")
PARTS = {  # the concatenation the tail reads: (mask key or None for the input, channels)
    "two_convs": [("a", 3), ("b", 4)],
    "two_equal_convs": [("a", 3), ("b", 3)],
    "conv_and_input": [("a", 3), (None, 1)],
    "dense2": [(None, 1), ("c1", 3), ("c2", 2)],
    "dense3": [(None, 1), ("c1", 3), ("c2", 2), ("c3", 2)],
}


class Masked(nn.Module):
    """A network whose forward can apply hand-written masks (``self.masks``)."""

    masks: dict | None = None

    def layer(self, name: str, x: torch.Tensor) -> torch.Tensor:
        h = getattr(self, name)(x)
        if self.masks is not None:
            mask = self.masks[name]
            h = h * mask.reshape(1, -1, *([1] * (h.dim() - 2)))
        return torch.relu(h)


class ConvConcat(Masked):
    """A concatenation of conv outputs (and maybe the input), then a tail reading it."""

    def __init__(self, *, source: str, tail: str) -> None:
        super().__init__()
        self.source, self.tail = source, tail
        channels = sum(width for _, width in PARTS[source])
        widths = dict((key, width) for key, width in PARTS[source] if key)
        if source in ("two_convs", "two_equal_convs", "conv_and_input"):
            self.a = nn.Conv2d(1, widths["a"], 3, padding=1)
        if "b" in widths:
            self.b = nn.Conv2d(1, widths["b"], 3, padding=1)
        if source.startswith("dense"):
            self.c1 = nn.Conv2d(1, 3, 3, padding=1)
            self.c2 = nn.Conv2d(4, 2, 3, padding=1)
        if source == "dense3":
            self.c3 = nn.Conv2d(6, 2, 3, padding=1)
        if tail == "conv":
            self.out = nn.Conv2d(channels, 5, 3, padding=1)
        else:
            positions = {"flatten": SIDE * SIDE, "pool_flatten": (SIDE // 2) ** 2, "mean": 1}
            self.out = nn.Linear(channels * positions[tail], 5)

    def joined(self, x: torch.Tensor) -> torch.Tensor:
        if self.source in ("two_convs", "two_equal_convs"):
            return torch.cat([self.layer("a", x), self.layer("b", x)], dim=1)
        if self.source == "conv_and_input":
            return torch.cat([self.layer("a", x), x], dim=1)
        x = torch.cat([x, self.layer("c1", x)], dim=1)
        x = torch.cat([x, self.layer("c2", x)], dim=1)
        if self.source == "dense3":
            x = torch.cat([x, self.layer("c3", x)], dim=1)
        return x

    def forward(self, x):
        z = self.joined(x)
        if self.tail == "conv":
            return self.layer("out", z).mean((2, 3))
        if self.tail == "flatten":
            return self.layer("out", z.flatten(1))
        if self.tail == "pool_flatten":
            return self.layer("out", torch.flatten(F.max_pool2d(z, 2), 1))
        return self.layer("out", z.mean((2, 3)))


class LinearConcat(Masked):
    """Two Linears' outputs (or a Linear's and the input) concatenated, read by a Linear."""

    def __init__(self, *, with_input: bool) -> None:
        super().__init__()
        self.with_input = with_input
        self.a = nn.Linear(6, 4)
        if not with_input:
            self.b = nn.Linear(6, 3)
        self.out = nn.Linear(10 if with_input else 7, 5)

    def forward(self, x):
        other = x if self.with_input else self.layer("b", x)
        return self.layer("out", torch.cat([self.layer("a", x), other], dim=-1))


class TinyDenseNet(Masked):
    """Stem conv, a DenseNet block of three conv layers, a 1x1 transition conv, pooling, a
    Linear: every weighted layer reads the concatenation of all earlier feature maps. With
    ``preact``, each dense layer is DenseNet-BC's batch norm -> ReLU -> conv on the
    concatenation (a batch norm HAT cannot mask: ``unmasked="per_task"``)."""

    def __init__(self, *, preact: bool = False) -> None:
        super().__init__()
        self.preact = preact
        if preact:
            self.norms = nn.ModuleList(nn.BatchNorm2d(c) for c in (4, 7, 10))
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.d1 = nn.Conv2d(4, 3, 3, padding=1)
        self.d2 = nn.Conv2d(7, 3, 3, padding=1)
        self.d3 = nn.Conv2d(10, 3, 3, padding=1)
        self.transition = nn.Conv2d(13, 6, 1)
        self.fc = nn.Linear(6 * 4 * 4, 8)

    def forward(self, x):
        x = self.layer("stem", x)
        for index, name in enumerate(("d1", "d2", "d3")):
            read = torch.relu(self.norms[index](x)) if self.preact else x
            x = torch.cat([x, self.layer(name, read)], dim=1)
        x = F.avg_pool2d(self.layer("transition", x), 2)
        return self.layer("fc", torch.flatten(x, 1))
