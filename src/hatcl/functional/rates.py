"""Gradient adjustment rates of HAT, AdaHAT and FG-AdaHAT, and FG-AdaHAT scheduler factors.

A rate multiplies a parameter's gradient. ``P`` (``cumulative``) is the parameter-wise cumulative
mask, with values in ``{0, 1}`` or ``[0, 1]``. The HAT-mode functions share one signature so that
they can sit in a registry side by side.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "adahat_rate",
    "adahat_reg_scale",
    "fg_adahat_rate",
    "hat_const_1_rate",
    "hat_const_alpha_rate",
    "hat_random_rate",
    "hat_rate",
    "linear_sparsity_reg_factor",
    "sparsity_reg_factor",
    "summative_mask_sparsity_reg_factor",
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


def adahat_rate(importance: Tensor, *, r: Tensor | float) -> Tensor:
    """Return the AdaHAT rate ``r / (I + r)``.

    Args:
        importance: parameter-wise importance ``I`` (e.g. the min-aggregated summative mask; for
            ``adahat_no_sum`` a tensor filled with the task id).
        r: the layer's scale ``r_l`` (> 0), scalar or broadcastable tensor.
    """
    return r / (importance + r)


def adahat_reg_scale(
    *, alpha: float, epsilon: float, network_sparsity: Tensor | float
) -> Tensor | float:
    """Return AdaHAT's scale ``r_l = alpha / (epsilon + R_l)``.

    Args:
        alpha: adjustment intensity (> 0).
        epsilon: the stabiliser ``epsilon``.
        network_sparsity: the layer's network sparsity ``R_l`` (scalar or 0-dim tensor).
    """
    return alpha / (epsilon + network_sparsity)


def fg_adahat_rate(importance: Tensor, *, alpha: float, scheduler_factor: Tensor | float) -> Tensor:
    """Return the FG-AdaHAT rate ``alpha / (c * I + alpha)``.

    Args:
        importance: parameter-wise summative importance ``I``.
        alpha: adjustment intensity (> 0).
        scheduler_factor: ``c``, a scalar or a tensor broadcastable to ``importance``.
    """
    return alpha / (scheduler_factor * importance + alpha)


def fg_adahat_rate_scaled(scaled_importance: Tensor, *, scheduler_factor: Tensor | float) -> Tensor:
    """Return ``1 / (1 + c * x)`` with ``x = I_task / alpha`` precomputed for the task.

    Equal to :func:`fg_adahat_rate` with ``I = alpha * x`` (``alpha / (c I + alpha)``), in three
    elementwise passes with one allocation, for the per-step hot path.

    Args:
        scaled_importance: ``x``, the parameter-wise importance divided by alpha.
        scheduler_factor: ``c`` (the per-step part of the scheduler), scalar or broadcastable.
    """
    return (scaled_importance * scheduler_factor).add_(1.0).reciprocal_()


def linear_sparsity_reg_factor(
    *,
    task_id: int,
    network_sparsity: Tensor | float,
    base_linear: float,
    base_mask_sparsity_reg: float,
) -> Tensor | float:
    """Return the ``linear_sparsity_reg`` factor ``(t + b_L) * (R_l + b_R)``."""
    return (task_id + base_linear) * (network_sparsity + base_mask_sparsity_reg)


def sparsity_reg_factor(
    *, network_sparsity: Tensor | float, base_mask_sparsity_reg: float
) -> Tensor | float:
    """Return the ``sparsity_reg`` factor ``R_l + b_R``."""
    return network_sparsity + base_mask_sparsity_reg


def summative_mask_sparsity_reg_factor(
    *,
    summative_param: Tensor,
    network_sparsity: Tensor | float,
    base_linear: float,
    base_mask_sparsity_reg: float,
) -> Tensor:
    """Return the ``summative_mask_sparsity_reg`` factor ``(M_sum + b_L) * (R_l + b_R)``.

    Args:
        summative_param: the parameter-wise summative mask (made parameter-wise by the caller with
            min aggregation; the first layer and biases use the unit's own value).
        network_sparsity: the layer's network sparsity ``R_l``.
        base_linear: ``b_L``.
        base_mask_sparsity_reg: ``b_R``.
    """
    return (summative_param + base_linear) * (network_sparsity + base_mask_sparsity_reg)
