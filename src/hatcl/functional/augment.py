"""Pure batched image augmentations: random crop after zero padding, horizontal flip.

Inputs are image batches ``(B, C, H, W)``; every operation is one gather or one ``where`` over
the whole batch (no per-sample Python work), on the batch's device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def padded_crop(images: Tensor, *, offsets: Tensor, padding: int) -> Tensor:
    """Each image zero-padded by ``padding`` pixels per side, then cropped back to ``H x W``.

    Args:
        images: ``(B, C, H, W)``.
        offsets: int64 ``(B, 2)``: per image the crop's top row and left column in the padded
            image, each in ``[0, 2 * padding]`` (``(padding, padding)`` gives the image back).
        padding: zero pixels added on every side.
    """
    batch, channels, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    rows = offsets[:, 0:1] + torch.arange(height, device=images.device)  # (B, H)
    cols = offsets[:, 1:2] + torch.arange(width, device=images.device)  # (B, W)
    b = torch.arange(batch, device=images.device).view(batch, 1, 1, 1)
    c = torch.arange(channels, device=images.device).view(1, channels, 1, 1)
    return padded[b, c, rows.view(batch, 1, height, 1), cols.view(batch, 1, 1, width)]


def horizontal_flip(images: Tensor, *, flags: Tensor) -> Tensor:
    """Images whose ``flags`` entry (bool ``(B,)``) is set, mirrored left to right."""
    return torch.where(flags.view(-1, 1, 1, 1), images.flip(-1), images)
