"""HAT gates: soft training masks and stored binary masks."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["binary_mask", "hat_gate"]


def hat_gate(embedding: Tensor, scale: float) -> Tensor:
    """Return the soft gate ``sigmoid(scale * embedding)``.

    Args:
        embedding: task embedding ``e`` (any shape).
        scale: gate scale ``s``.

    Returns:
        Tensor of the embedding's shape with values in ``(0, 1)``; differentiable in ``embedding``.
    """
    return torch.sigmoid(scale * embedding)


def binary_mask(embedding: Tensor) -> Tensor:
    """Return the binary mask ``1[embedding > 0]``.

    This equals ``sigmoid(s * e) > 0.5`` for every ``s > 0``.

    Args:
        embedding: task embedding ``e`` (any shape).

    Returns:
        Tensor of zeros and ones, of the embedding's dtype if that is floating, else float32.
        It carries no gradient.
    """
    dtype = embedding.dtype if embedding.is_floating_point() else torch.float32
    return (embedding.detach() > 0).to(dtype)
