"""Pure tensor math of winning subnetworks (WSN, Kang et al., ICML 2022).

A task's binary mask keeps the top fraction c of a layer's scores; the forward uses ``W * m``.
Scores learn through the straight-through estimator of edge-popup (Ramanujan et al., CVPR
2020): the mask's gradient is passed to the scores unchanged, so ``d L / d s = d L / d(W m) * W``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def kept_count(numel: int, fraction: float) -> int:
    """How many of ``numel`` entries a top-``fraction`` mask keeps (at least one)."""
    return max(1, min(numel, round(fraction * numel)))


def top_fraction_mask(scores: Tensor, fraction: float) -> Tensor:
    """Bool mask of the ``kept_count`` largest scores (by value) of the tensor."""
    flat = scores.detach().flatten()
    chosen = torch.topk(flat, kept_count(flat.numel(), fraction), sorted=False).indices
    mask = torch.zeros_like(flat, dtype=torch.bool).scatter(0, chosen, True)
    return mask.view_as(scores)


def straight_through_weight(weight: Tensor, scores: Tensor, mask: Tensor) -> Tensor:
    """``W * m`` whose gradient is ``m * g`` for ``W`` and ``W * g`` for the scores."""
    binary = mask.to(weight.dtype)
    return weight * (binary + scores - scores.detach())


def masked_weight(weight: Tensor, mask: Tensor) -> Tensor:
    """``W * m`` with a fixed mask (an earlier task's subnetwork)."""
    return weight * mask.to(weight.dtype)
