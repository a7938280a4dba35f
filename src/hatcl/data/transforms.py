"""Per-batch input transforms of the scenarios (pure tensor operations on a normalised batch)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

#: Images rotated per chunk, bounding the memory of the sampling grid on large inputs.
ROTATION_CHUNK = 4096


@dataclass(frozen=True, eq=False)
class PixelPermutation:
    """Reorder the flattened features of every sample with one fixed permutation.

    Attributes:
        permutation: int64 permutation of ``range(prod(input_shape))``; output feature ``i`` is
            input feature ``permutation[i]``.
    """

    permutation: Tensor

    def __call__(self, x: Tensor) -> Tensor:
        """Permute ``x`` of shape ``(N, *input_shape)``."""
        flat = x.reshape(x.shape[0], self.permutation.numel())
        return torch.index_select(flat, 1, self.permutation).reshape(x.shape)


@dataclass(frozen=True, eq=False)
class Rotation:
    """Rotate square images counter-clockwise by ``angle`` degrees (bilinear, constant fill).

    Applied to every batch; the sampling grid of one image (``H * W * 2`` floats, 6 KB for
    28x28) is computed on first use and kept, so a task's rotation costs one ``grid_sample``
    per batch and a few KB of memory.

    Attributes:
        angle: degrees, counter-clockwise as displayed (row 0 at the top); 90 equals
            ``torch.rot90(x, 1, dims=(-2, -1))``.
        fill: per-channel value of the area rotated in from outside the image (the normalised
            background); empty means 0.
    """

    angle: float
    fill: tuple[float, ...] = ()
    _grids: dict = field(default_factory=dict, repr=False, compare=False)

    def __call__(self, x: Tensor) -> Tensor:
        """Rotate ``x`` of shape ``(N, C, H, W)``."""
        _check_images(x, self.fill)
        if math.remainder(self.angle, 360.0) == 0.0:
            return x.clone()
        key = (int(x.shape[-1]), x.dtype)
        if key not in self._grids:
            self._grids[key] = rotation_grid(angle=self.angle, size=key[0], dtype=x.dtype)
        return _sample(x, self._grids[key], self.fill)


def rotation_grid(*, angle: float, size: int, dtype: torch.dtype) -> Tensor:
    """The ``(1, size, size, 2)`` sampling grid of a rotation by ``angle`` degrees."""
    radians = math.radians(angle)
    cos, sin = math.cos(radians), math.sin(radians)
    theta = torch.tensor([[[cos, -sin, 0.0], [sin, cos, 0.0]]], dtype=dtype)
    return F.affine_grid(theta, [1, 1, size, size], align_corners=False)


def rotate_images(x: Tensor, *, angle: float, fill: tuple[float, ...] = ()) -> Tensor:
    """Rotate a batch of square images ``(N, C, H, W)`` by ``angle`` degrees counter-clockwise.

    Bilinear sampling about the image centre; pixels that come from outside the image take the
    per-channel ``fill`` value. A multiple of 360 degrees returns an unchanged copy.

    Raises:
        ValueError: if ``x`` is not a batch of square images or ``fill`` has the wrong length.
    """
    _check_images(x, fill)
    if math.remainder(angle, 360.0) == 0.0:
        return x.clone()
    return _sample(x, rotation_grid(angle=angle, size=int(x.shape[-1]), dtype=x.dtype), fill)


def _check_images(x: Tensor, fill: tuple[float, ...]) -> None:
    if x.dim() != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError(
            f"rotation needs square images (N, C, H, W), got a tensor of shape {tuple(x.shape)}"
        )
    if fill and len(fill) != x.shape[1]:
        raise ValueError(f"fill has {len(fill)} values for {x.shape[1]} channels")


def _sample(x: Tensor, grid: Tensor, fill: tuple[float, ...]) -> Tensor:
    offset = torch.tensor(fill or (0.0,) * x.shape[1], dtype=x.dtype).view(1, -1, 1, 1)
    out = torch.empty_like(x)
    for start in range(0, x.shape[0], ROTATION_CHUNK):
        chunk = x[start : start + ROTATION_CHUNK] - offset
        rotated = F.grid_sample(
            chunk,
            grid.expand(chunk.shape[0], -1, -1, -1),
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        )
        out[start : start + ROTATION_CHUNK] = rotated + offset
    return out
