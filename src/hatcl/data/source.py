"""A decoded data source: compact tensors plus the statistics that normalise a batch of them."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class SourceData:
    """A dataset decoded into tensors in its compact dtype, as a source loader returns it.

    The inputs stay as decoded (``uint8`` for images): a batch becomes model input through
    :meth:`normalise`, so no float copy of the dataset is ever held.

    Attributes:
        train_x: raw training inputs ``(N, C, H, W)`` (``(N, 1, L)`` for 1-D signals).
        train_y: int64 training labels in ``[0, num_classes)``.
        test_x: raw test inputs, same per-sample shape and dtype.
        test_y: int64 test labels.
        num_classes: number of classes.
        name: source name.
        mean: per-channel mean of the training inputs after division by ``divisor``.
        std: per-channel std of the training inputs after division by ``divisor``.
        divisor: raw value that maps to 1.0 (255 for bytes, 16 for the 8x8 digits, 1 for floats).
    """

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int
    name: str
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    divisor: float = 1.0

    @property
    def background(self) -> tuple[float, ...]:
        """Normalised value of a raw zero per channel (fill value for rotations)."""
        return tuple(-m / s for m, s in zip(self.mean, self.std))

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Per-sample shape, e.g. ``(1, 28, 28)``."""
        return tuple(int(d) for d in self.train_x.shape[1:])

    def normaliser(self) -> Normalisation:
        """The per-batch map from raw inputs to normalised float32 inputs."""
        return Normalisation(divisor=self.divisor, mean=self.mean, std=self.std)

    def normalise(self, raw: Tensor) -> Tensor:
        """Normalised float32 copy of a batch of raw inputs ``(B, C, ...)``."""
        return self.normaliser()(raw)


@dataclass(frozen=True)
class Normalisation:
    """``(raw / divisor - mean[c]) / std[c]`` per channel, in float32, on a batch.

    The order of operations (divide, subtract, divide) is that of a float copy normalised once,
    so a batch normalised here equals the same rows of such a copy exactly.
    """

    divisor: float = 1.0
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __call__(self, raw: Tensor) -> Tensor:
        """Normalise ``raw`` of shape ``(B, C, ...)``."""
        # one fresh float copy, then in place: a batch allocates one buffer, not four
        x = raw.to(dtype=torch.float32, copy=True)
        if self.divisor != 1.0:
            x.div_(self.divisor)
        if not self.mean:
            return x
        shape = (1, -1) + (1,) * (x.dim() - 2)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(shape)
        std = torch.tensor(self.std, dtype=torch.float32).view(shape)
        return x.sub_(mean).div_(std)
