"""Summing strategies: how the summative importance follows from the task importances.

The strategies of docs/spec.md §7.

Each strategy is a :class:`SummingStrategy` entry of ``SUMMING_STRATEGIES``; the math is in
:mod:`hatcl.functional.summing`. A strategy that needs a parameter names it and validates it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from torch import Tensor

from hatcl.functional import summing
from hatcl.validation import check_number

OPTION_PREFIX = "importance_summing_strategy_"


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

    def resolve_option(self, *, name: str, value: object) -> float | None:
        """The strategy's own parameter, validated; ``None`` for a strategy without one.

        Raises:
            ValueError: if the strategy needs its parameter and ``value`` is ``None`` or out of
                range; ``TypeError`` if it is not a number.
        """
        if self.option is None:
            return None
        if value is None:
            raise ValueError(
                f"importance_summing_strategy {name!r} requires {self.option} "
                f"(a number > {self.option_low:g}), got None"
            )
        return check_number(value, parameter=self.option, low=self.option_low, low_inclusive=False)


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


ADD_LATEST = SummingStrategy(combine=_add_latest)
ADD_ALL = SummingStrategy(combine=_add_all)
ADD_AVERAGE = SummingStrategy(combine=_add_average)
LINEAR_DECREASE = SummingStrategy(
    combine=_decrease(summing.linear_decrease_weight, "step"),
    option=f"{OPTION_PREFIX}linear_step",
    option_low=0.0,
)
QUADRATIC_DECREASE = SummingStrategy(combine=_decrease(summing.quadratic_decrease_weight, None))
CUBIC_DECREASE = SummingStrategy(combine=_decrease(summing.cubic_decrease_weight, None))
EXPONENTIAL_DECREASE = SummingStrategy(
    combine=_decrease(summing.exponential_decrease_weight, "rate"),
    option=f"{OPTION_PREFIX}exponential_rate",
    option_low=1.0,
)
LOG_DECREASE = SummingStrategy(
    combine=_decrease(summing.log_decrease_weight, "base"),
    option=f"{OPTION_PREFIX}log_base",
    option_low=1.0,
)
FACTORIAL_DECREASE = SummingStrategy(combine=_decrease(summing.factorial_decrease_weight, None))
