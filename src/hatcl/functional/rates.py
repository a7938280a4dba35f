"""Gradient adjustment rates of HAT, AdaHAT and FG-AdaHAT, and FG-AdaHAT scheduler factors.

The one copy of these formulas: the algorithms' rules call them and the tests check them.

A rate multiplies a parameter's gradient. ``P`` (``cumulative``) is the parameter-wise cumulative
mask, with values in ``{0, 1}`` or ``[0, 1]``. The HAT-mode functions share one signature so that
they can sit in a registry side by side.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "adahat_scale",
    "adjustment_rate",
    "adjustment_rate_from_inverse",
    "fg_adahat_step_factor",
    "hat_const_1_rate",
    "hat_const_alpha_rate",
    "hat_random_rate",
    "hat_rate",
    "linear_task_factor",
    "summative_mask_task_factor",
]


def hat_rate(
    cumulative: Tensor, *, alpha: float | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """Return the ``hat`` rate ``1 - P``: used parameters are frozen.

    ``alpha`` and ``generator`` are accepted for a uniform signature and unused.
    """
    return 1 - cumulative


def hat_random_rate(
    cumulative: Tensor, *, alpha: float | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """Return the ``hat_random`` rate ``U(0, 1) * P + (1 - P)``.

    A fresh uniform draw of ``P``'s shape is made on every call, from ``generator`` (the default
    RNG if ``None``). ``alpha`` is unused.
    """
    noise = torch.rand(
        cumulative.shape, generator=generator, dtype=cumulative.dtype, device=cumulative.device
    )
    return noise * cumulative + (1 - cumulative)


def hat_const_alpha_rate(
    cumulative: Tensor, *, alpha: float | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """Return the ``hat_const_alpha`` rate ``alpha * P + (1 - P)``.

    Raises:
        ValueError: if ``alpha`` is ``None``.
    """
    if alpha is None:
        raise ValueError("alpha is required by the hat_const_alpha adjustment mode, got None")
    return alpha * cumulative + (1 - cumulative)


def hat_const_1_rate(
    cumulative: Tensor, *, alpha: float | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """Return the ``hat_const_1`` rate: all ones (no protection)."""
    return torch.ones_like(cumulative)


def adjustment_rate(importance: Tensor, *, k: Tensor | float) -> Tensor:
    """Return the adaptive adjustment rate ``k / (I + k)``.

    AdaHAT and FG-AdaHAT share this form and differ in ``I`` and ``k``: AdaHAT uses the
    parameter-wise summative mask and ``k = r_l = alpha / (epsilon + R_l)``; FG-AdaHAT the
    parameter-wise summative importance and ``k = alpha / c``. HAT's ``1 - P`` is the ``k -> 0``
    limit for a binary ``P``.

    Args:
        importance: parameter-wise importance ``I`` (>= 0).
        k: the scale (> 0), scalar or broadcastable tensor.
    """
    return k / (importance + k)


def adjustment_rate_from_inverse(importance: Tensor, *, inverse_k: Tensor | float) -> Tensor:
    """Return ``k / (I + k)`` as ``1 / (1 + I / k)`` given ``1 / k``: the per-step hot path.

    Three elementwise passes and one allocation: for rules whose ``I`` is fixed for a task and
    whose ``1 / k`` is a per-step scalar (FG-AdaHAT: ``I / alpha`` times the task-fixed
    scheduler factor, ``1 / k = R_l + b_R``).

    Args:
        importance: ``I`` (>= 0), already divided by every task-fixed part of ``k``.
        inverse_k: ``1 / k`` (> 0), scalar or broadcastable tensor.
    """
    return (importance * inverse_k).add_(1.0).reciprocal_()


def adahat_scale(
    *, alpha: float, epsilon: float, network_sparsity: Tensor | float
) -> Tensor | float:
    """Return AdaHAT's ``k``: ``r_l = alpha / (epsilon + R_l)``.

    Args:
        alpha: adjustment intensity (> 0).
        epsilon: the stabiliser ``epsilon``.
        network_sparsity: the layer's network sparsity ``R_l`` (scalar or 0-dim tensor).
    """
    return alpha / (epsilon + network_sparsity)


def fg_adahat_step_factor(
    *, network_sparsity: Tensor | float, base_mask_sparsity_reg: float
) -> Tensor | float:
    """Return the per-step part ``R_l + b_R`` of every FG-AdaHAT scheduler factor ``c``."""
    return network_sparsity + base_mask_sparsity_reg


def linear_task_factor(*, task_id: int, base_linear: float) -> float:
    """Return the task-fixed part ``t + b_L`` of the ``linear_sparsity_reg`` factor ``c``."""
    return float(task_id) + base_linear


def summative_mask_task_factor(*, summative_param: Tensor, base_linear: float) -> Tensor:
    """Return the task-fixed part ``M_sum + b_L`` of ``summative_mask_sparsity_reg``'s ``c``.

    Args:
        summative_param: the summative mask made parameter-wise by the caller (min aggregation;
            the first layer and biases use the unit's own value).
        base_linear: ``b_L``.
    """
    return summative_param + base_linear
