"""FG-AdaHAT's option entries: summing strategies (spec §7) and importance schedulers (spec §5).

Both are registry entries (``SUMMING_STRATEGIES``, ``IMPORTANCE_SCHEDULERS`` in
:mod:`hatcl.algorithms.registries`); the math is in :mod:`hatcl.functional.summing` and
:mod:`hatcl.functional.rates`.

Every scheduler factor has the form ``c = task_factor * (R_l + b_R)`` where ``task_factor`` is
fixed during a task: ``t + b_L`` (``linear_sparsity_reg``), 1 (``sparsity_reg``) or the
parameter-wise ``min(M_sum_i, M_sum_j) + b_L`` (``summative_mask_sparsity_reg``). FG-AdaHAT
multiplies the task factor into the parameter-wise importance once per task, so a step only
computes the scalar ``R_l + b_R`` and the rate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor

from hatcl.algorithms.hat_mechanism import LayerContext, to_weight_shape
from hatcl.functional import summing
from hatcl.functional.aggregation import aggregate_min, neuron_to_bias


@dataclass(frozen=True)
class SummingStrategy:
    """How the summative importance ``I^{<t+1}`` follows from the task importances.

    Attributes:
        combine: ``combine(summative, task_importances, option) -> new summative`` where
            ``task_importances`` holds ``I^1 .. I^t`` in task order and ``option`` is the
            strategy's own parameter (``None`` if it has none).
        option: the FG-AdaHAT parameter the strategy requires, or ``None``.
        option_low: that parameter's exclusive lower bound.
    """

    combine: Callable[[Tensor, Sequence[Tensor], float | None], Tensor]
    option: str | None = None
    option_low: float | None = None


def _add_latest(summative: Tensor, tasks: Sequence[Tensor], option: float | None) -> Tensor:
    return summing.add_latest(summative, tasks[-1])


def _add_all(summative: Tensor, tasks: Sequence[Tensor], option: float | None) -> Tensor:
    return summing.add_all(summative, tasks)


def _add_average(summative: Tensor, tasks: Sequence[Tensor], option: float | None) -> Tensor:
    return summing.add_average(summative, tasks)


def _decrease(weight: Callable[..., float], keyword: str | None) -> Callable:
    """A recompute-from-zero strategy ``sum_tau w(t - tau) I^tau`` with weight function ``w``."""

    def combine(summative: Tensor, tasks: Sequence[Tensor], option: float | None) -> Tensor:
        w = weight if keyword is None else partial(weight, **{keyword: option})
        return summing.weighted_task_sum(tasks, w)

    return combine


_PREFIX = "importance_summing_strategy_"
ADD_LATEST = SummingStrategy(combine=_add_latest)
ADD_ALL = SummingStrategy(combine=_add_all)
ADD_AVERAGE = SummingStrategy(combine=_add_average)
LINEAR_DECREASE = SummingStrategy(
    combine=_decrease(summing.linear_decrease_weight, "step"),
    option=f"{_PREFIX}linear_step",
    option_low=0.0,
)
QUADRATIC_DECREASE = SummingStrategy(combine=_decrease(summing.quadratic_decrease_weight, None))
CUBIC_DECREASE = SummingStrategy(combine=_decrease(summing.cubic_decrease_weight, None))
EXPONENTIAL_DECREASE = SummingStrategy(
    combine=_decrease(summing.exponential_decrease_weight, "rate"),
    option=f"{_PREFIX}exponential_rate",
    option_low=1.0,
)
LOG_DECREASE = SummingStrategy(
    combine=_decrease(summing.log_decrease_weight, "base"),
    option=f"{_PREFIX}log_base",
    option_low=1.0,
)
FACTORIAL_DECREASE = SummingStrategy(combine=_decrease(summing.factorial_decrease_weight, None))


# -- importance schedulers: the task-fixed part of c (weight factor, bias factor) ---------------

TaskFactors = tuple[Tensor | float, Tensor | float]


def linear_sparsity_reg(
    *, task_id: int, layer: LayerContext, summative_mask: Mapping[str, Tensor], base_linear: float
) -> TaskFactors:
    """``linear_sparsity_reg``: ``c = (t + b_L) (R_l + b_R)``; task factor ``t + b_L``."""
    factor = float(task_id) + base_linear
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
    bias = neuron_to_bias(summative_mask[layer.layer.mask_key])
    return weight + base_linear, torch.as_tensor(bias) + base_linear
