"""Summing strategies for task importances (summative importance after task t).

The ``*_decrease`` strategies weight task ``tau``'s importance by ``w(k)`` with ``k = t - tau``
(0 for the latest task) and recompute the sum from zero: every earlier task contributes. The
additive strategies add to the previous summative importance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "add_all",
    "add_average",
    "add_latest",
    "cubic_decrease_weight",
    "exponential_decrease_weight",
    "factorial_decrease_weight",
    "linear_decrease_weight",
    "log_decrease_weight",
    "quadratic_decrease_weight",
    "weighted_task_sum",
]


def _check_distance(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k (task distance t - tau) must be an int >= 0, got {k!r}")


def linear_decrease_weight(k: int, *, step: float) -> float:
    """Return the ``linear_decrease`` weight ``step * k + 1`` (``step > 0``)."""
    _check_distance(k)
    if not step > 0:
        raise ValueError(
            f"step (importance_summing_strategy_linear_step) must be > 0, got {step!r}"
        )
    return float(step * k + 1)


def quadratic_decrease_weight(k: int) -> float:
    """Return the ``quadratic_decrease`` weight ``(k + 1)^2``."""
    _check_distance(k)
    return float((k + 1) ** 2)


def cubic_decrease_weight(k: int) -> float:
    """Return the ``cubic_decrease`` weight ``(k + 1)^3``."""
    _check_distance(k)
    return float((k + 1) ** 3)


def exponential_decrease_weight(k: int, *, rate: float) -> float:
    """Return the ``exponential_decrease`` weight ``rate^(k + 1)`` (``rate > 1``)."""
    _check_distance(k)
    if not rate > 1:
        raise ValueError(
            f"rate (importance_summing_strategy_exponential_rate) must be > 1, got {rate!r}"
        )
    return float(rate ** (k + 1))


def log_decrease_weight(k: int, *, base: float) -> float:
    """Return the ``log_decrease`` weight ``log_base(k + 1) + 1`` (``base > 1``; 1 at ``k = 0``)."""
    _check_distance(k)
    if not base > 1:
        raise ValueError(f"base (importance_summing_strategy_log_base) must be > 1, got {base!r}")
    return math.log(k + 1) / math.log(base) + 1.0


def factorial_decrease_weight(k: int) -> float:
    """Return the ``factorial_decrease`` weight ``(k + 1)!``."""
    _check_distance(k)
    return float(math.factorial(k + 1))


def weighted_task_sum(task_importances: Sequence[Tensor], weight: Callable[[int], float]) -> Tensor:
    """Return ``sum_tau w(t - tau) * I^tau`` over tasks ``tau = 1..t``.

    Args:
        task_importances: importances of tasks 1..t, in task order (same shapes).
        weight: the weight of a task at distance ``k = t - tau``, e.g.
            ``functools.partial(linear_decrease_weight, step=1.0)``.

    Raises:
        ValueError: if ``task_importances`` is empty.
    """
    if len(task_importances) == 0:
        raise ValueError("task_importances must hold at least one task, got an empty sequence")
    t = len(task_importances)
    total = torch.zeros_like(task_importances[0])
    for tau, importance in enumerate(task_importances, start=1):
        total = total + weight(t - tau) * importance
    return total


def add_latest(summative: Tensor, latest: Tensor) -> Tensor:
    """Return ``summative + I^t`` (``add_latest``)."""
    return summative + latest


def add_all(summative: Tensor, task_importances: Sequence[Tensor]) -> Tensor:
    """Return ``summative + sum_{tau <= t} I^tau`` (``add_all``).

    Raises:
        ValueError: if ``task_importances`` is empty.
    """
    if len(task_importances) == 0:
        raise ValueError("task_importances must hold at least one task, got an empty sequence")
    return summative + torch.stack(tuple(task_importances)).sum(dim=0)


def add_average(summative: Tensor, task_importances: Sequence[Tensor]) -> Tensor:
    """Return ``summative + (1 / t) sum_{tau <= t} I^tau`` (``add_average``).

    Raises:
        ValueError: if ``task_importances`` is empty.
    """
    if len(task_importances) == 0:
        raise ValueError("task_importances must hold at least one task, got an empty sequence")
    return summative + torch.stack(tuple(task_importances)).mean(dim=0)
