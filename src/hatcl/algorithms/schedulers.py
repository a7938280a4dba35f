"""FG-AdaHAT's importance schedulers (docs/spec.md §5): the task-fixed part of the factor ``c``.

Each is an ``IMPORTANCE_SCHEDULERS`` entry. Every scheduler factor has the form
``c = task_factor * (R_l + b_R)`` where ``task_factor`` is fixed during a task: ``t + b_L``
(``linear_sparsity_reg``), 1 (``sparsity_reg``) or the parameter-wise ``min(M_sum_i, M_sum_j) +
b_L`` (``summative_mask_sparsity_reg``). FG-AdaHAT multiplies the task factor into the
parameter-wise importance once per task, so a step only computes the scalar ``R_l + b_R`` and the
rate. The formulas are in :mod:`hatcl.functional.rates`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from hatcl.algorithms.hat_mechanism import LayerContext, to_weight_shape
from hatcl.functional.aggregation import aggregate_min, neuron_to_bias
from hatcl.functional.rates import linear_task_factor, summative_mask_task_factor

TaskFactors = tuple[Tensor | float, Tensor | float]


def linear_sparsity_reg(
    *, task_id: int, layer: LayerContext, summative_mask: Mapping[str, Tensor], base_linear: float
) -> TaskFactors:
    """``linear_sparsity_reg``: ``c = (t + b_L) (R_l + b_R)``; task factor ``t + b_L``."""
    factor = linear_task_factor(task_id=task_id, base_linear=base_linear)
    return factor, factor


def sparsity_reg(
    *, task_id: int, layer: LayerContext, summative_mask: Mapping[str, Tensor], base_linear: float
) -> TaskFactors:
    """``sparsity_reg``: ``c = R_l + b_R``; task factor 1."""
    return 1.0, 1.0


def summative_mask_sparsity_reg(
    *, task_id: int, layer: LayerContext, summative_mask: Mapping[str, Tensor], base_linear: float
) -> TaskFactors:
    """``summative_mask_sparsity_reg``: task factor ``min(M_sum_i, M_sum_j) + b_L`` per weight.

    The first layer's weights and every bias use the unit's own ``M_sum_i + b_L``.
    """
    weight = to_weight_shape(layer.layer, layer.weight, summative_mask, aggregate_min)
    bias = torch.as_tensor(neuron_to_bias(summative_mask[layer.layer.mask_key]))
    return (
        summative_mask_task_factor(summative_param=weight, base_linear=base_linear),
        summative_mask_task_factor(summative_param=bias, base_linear=base_linear),
    )
