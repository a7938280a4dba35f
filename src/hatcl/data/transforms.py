"""Whole-tensor input transforms used by the scenarios (pure torch, applied once per task)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

#: Images rotated per chunk, bounding the memory of the sampling grid.
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


@dataclass(frozen=True)
class Rotation:
    """Rotate square images counter-clockwise by ``angle`` degrees (bilinear, constant fill).

    Attributes:
        angle: degrees, counter-clockwise as displayed (row 0 at the top); 90 equals
            ``torch.rot90(x, 1, dims=(-2, -1))``.
        fill: per-channel value of the area rotated in from outside the image (the normalised
            background); empty means 0.
    """

    angle: float
    fill: tuple[float, ...] = ()

    def __call__(self, x: Tensor) -> Tensor:
        """Rotate ``x`` of shape ``(N, C, H, W)``."""
        return rotate_images(x, angle=self.angle, fill=self.fill)


def rotate_images(x: Tensor, *, angle: float, fill: tuple[float, ...] = ()) -> Tensor:
    """Rotate a batch of square images ``(N, C, H, W)`` by ``angle`` degrees counter-clockwise.

    Bilinear sampling about the image centre; pixels that come from outside the image take the
    per-channel ``fill`` value. A multiple of 360 degrees returns an unchanged copy.

    Raises:
        ValueError: if ``x`` is not a batch of square images or ``fill`` has the wrong length.
    """
    if x.dim() != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError(
            f"rotation needs square images (N, C, H, W), got a tensor of shape {tuple(x.shape)}"
        )
    if fill and len(fill) != x.shape[1]:
        raise ValueError(f"fill has {len(fill)} values for {x.shape[1]} channels")
    if math.remainder(angle, 360.0) == 0.0:
        return x.clone()
    radians = math.radians(angle)
    cos, sin = math.cos(radians), math.sin(radians)
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype)
    offset = torch.tensor(fill or (0.0,) * x.shape[1], dtype=x.dtype).view(1, -1, 1, 1)
    out = torch.empty_like(x)
    for start in range(0, x.shape[0], ROTATION_CHUNK):
        chunk = x[start : start + ROTATION_CHUNK] - offset
        grid = F.affine_grid(
            theta.expand(chunk.shape[0], 2, 3), list(chunk.shape), align_corners=False
        )
        rotated = F.grid_sample(
            chunk, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        out[start : start + ROTATION_CHUNK] = rotated + offset
    return out
