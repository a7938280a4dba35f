"""Elastic weight consolidation (Kirkpatrick et al. 2017): diagonal Fisher and the penalty.

The consolidated state of every parameter is one quadratic ``F * (theta - mu)**2`` plus a
constant ``c``: a sum of per-task penalties ``sum_t F_t (theta - theta*_t)**2`` (the paper's
"separate" penalties) collapses exactly into ``F = sum_t F_t``, the Fisher-weighted mean anchor
``mu`` and a constant, so memory does not grow with the number of tasks. Online EWC (Schwarz et
al. 2018) decays the old Fisher by ``gamma`` and re-anchors at the latest parameters.
"""

from __future__ import annotations

import torch
from torch import Tensor


def squared_gradient_sum(per_sample_gradients: Tensor) -> Tensor:
    """Sum over samples (first dim) of squared per-sample gradients (the Fisher numerator)."""
    return per_sample_gradients.pow(2).sum(0)


def linear_squared_gradient_sums(
    inputs: Tensor, *, output_gradient: Tensor
) -> tuple[Tensor, Tensor]:
    """Sums over samples of a linear layer's squared per-sample weight and bias gradients.

    Sample ``n``'s weight gradient is the outer product ``g_n a_n^T`` of its output gradient and
    its input, so ``sum_n (g_n a_n^T)**2 = (g**2)^T (a**2)``: no per-sample gradient is formed.
    ``inputs`` is ``(batch, in_features)``, ``output_gradient`` ``(batch, out_features)``.
    """
    squared = output_gradient.pow(2)
    return squared.T @ inputs.pow(2), squared.sum(0)


def quadratic_penalty(parameter: Tensor, *, anchor: Tensor, fisher: Tensor) -> Tensor:
    """``sum_i F_i * (theta_i - mu_i)**2`` (0-dim)."""
    return (fisher * (parameter - anchor).pow(2)).sum()


def ewc_penalty(
    parameters: list[Tensor],
    *,
    anchors: list[Tensor],
    fishers: list[Tensor],
    offset: Tensor | float = 0.0,
    ewc_lambda: float,
) -> Tensor:
    """EWC loss term ``lambda / 2 * (sum_p sum_i F_i (theta_i - mu_i)**2 + offset)`` (eq. 3)."""
    total = sum(
        quadratic_penalty(p, anchor=a, fisher=f) for p, a, f in zip(parameters, anchors, fishers)
    )
    return 0.5 * ewc_lambda * (total + offset)


def merge_separate(
    *, fisher: Tensor, anchor: Tensor, new_fisher: Tensor, new_anchor: Tensor, gamma: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Add one task's penalty ``F_new (theta - theta*)**2`` to the consolidated quadratic.

    ``A (t - m)**2 + B (t - n)**2 = (A + B)(t - (A m + B n)/(A + B))**2 + A B (m - n)**2/(A + B)``.
    ``gamma`` is unused (kept for a common signature with :func:`merge_online`).

    Returns:
        The merged Fisher, the merged anchor and the constant this merge adds (0-dim).
    """
    total = fisher + new_fisher
    positive = total > 0
    safe = torch.where(positive, total, torch.ones_like(total))
    weighted = (fisher * anchor + new_fisher * new_anchor) / safe
    anchor_merged = torch.where(positive, weighted, new_anchor)
    added = torch.where(positive, fisher * new_fisher * (anchor - new_anchor).pow(2) / safe, 0.0)
    return total, anchor_merged, added.sum()


def merge_online(
    *, fisher: Tensor, anchor: Tensor, new_fisher: Tensor, new_anchor: Tensor, gamma: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Online EWC: ``F <- gamma F + F_new``, anchor at the latest parameters, no constant.

    Returns:
        The merged Fisher, the new anchor and a zero constant (the old constant is dropped).
    """
    return gamma * fisher + new_fisher, new_anchor.clone(), fisher.new_zeros(())
