"""Reductions used by neuron-wise importance measures."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["batch_abs_mean", "fan_in", "fan_out", "min_max_normalise", "min_max_normalise_each"]


def fan_in(x: Tensor) -> Tensor:
    """Return the sum over every dim but 0 (per output unit of a weight).

    A 1-D input (e.g. a bias) is returned as is (a copy), since there is nothing to sum.
    """
    if x.dim() == 0:
        raise ValueError("fan_in needs a tensor with at least 1 dim, got a 0-dim tensor")
    if x.dim() == 1:
        return x.clone()
    return x.sum(dim=tuple(range(1, x.dim())))


def fan_out(x: Tensor) -> Tensor:
    """Return the sum over every dim but 1 (per input unit of a weight).

    Raises:
        ValueError: if ``x`` has fewer than 2 dims.
    """
    if x.dim() < 2:
        raise ValueError(f"fan_out needs at least 2 dims, got shape {tuple(x.shape)}")
    return x.sum(dim=tuple(d for d in range(x.dim()) if d != 1))


def batch_abs_mean(x: Tensor) -> Tensor:
    """Return the mean of ``|x|`` over every dim but the unit dim 1 (batch and spatial dims).

    Raises:
        ValueError: if ``x`` has fewer than 2 dims.
    """
    if x.dim() < 2:
        raise ValueError(f"batch_abs_mean needs at least 2 dims, got shape {tuple(x.shape)}")
    return x.abs().mean(dim=tuple(d for d in range(x.dim()) if d != 1))


def min_max_normalise(x: Tensor, *, eps: float = 1e-8) -> Tensor:
    """Return ``(x - min) / (max - min + eps)`` over all entries of ``x``."""
    low = x.min()
    high = x.max()
    return (x - low) / (high - low + eps)


def min_max_normalise_each(xs: list[Tensor], *, eps: float = 1e-8) -> list[Tensor]:
    """:func:`min_max_normalise` of every tensor of ``xs``, each over its own entries.

    One ``aminmax`` per tensor, then four ``_foreach`` ops over all of them (on a GPU a handful
    of kernels instead of six per tensor); the same arithmetic, so the same values.
    """
    if not xs:
        return []
    lows, highs = zip(*(torch.aminmax(x) for x in xs))
    ranges = torch._foreach_sub(list(highs), list(lows))
    torch._foreach_add_(ranges, eps)
    shifted = torch._foreach_sub(xs, list(lows))
    torch._foreach_div_(shifted, ranges)
    return list(shifted)
