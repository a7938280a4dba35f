"""FG-AdaHAT: AdaHAT guided by fine-grained neuron-wise importance (Wang et al., 2025).

The method of docs/spec.md §5.

The HAT mechanism with the rule ``rate = alpha / (c * I + alpha)``, i.e. ``k / (I + k)`` with
``k = alpha / c``: ``I`` is the summative importance of earlier tasks (kept by an
:class:`~hatcl.importance.tracker.ImportanceTracker`) made parameter-wise, fixed during a task, so
computed once per task with the task-fixed part of the scheduler factor ``c`` folded in; a step
only computes the scalar ``R_l + b_R`` of each layer and the rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from hatcl.algorithms.hat_family import HATFamily
from hatcl.algorithms.hat_mechanism import (
    AdjustmentRule,
    FlatLayout,
    LayerContext,
    NetworkSparsity,
    adjusted_parameters,
    to_weight_shape,
)
from hatcl.algorithms.hat_options import HATOptions, options_signature, split_options
from hatcl.algorithms.registries import IMPORTANCE_SCHEDULERS, SUMMING_STRATEGIES
from hatcl.functional.aggregation import neuron_to_bias
from hatcl.functional.rates import adjustment_rate_from_inverse, fg_adahat_step_factor
from hatcl.importance.checked import checked_measure
from hatcl.importance.registry import resolve_importance
from hatcl.importance.stochastic_gates import StochasticGatesPlugin
from hatcl.importance.tracker import ImportanceTracker
from hatcl.masking.registries import AGGREGATIONS
from hatcl.validation import check_bool, check_number


class FGAdaHATRule(AdjustmentRule):
    """FG-AdaHAT's rates ``alpha / (c * I + alpha)`` from the tracker's summative importance.

    Args:
        tracker: the importance tracker (read for the summative importance at task start).
        alpha: ``adjustment_intensity``.
        aggregate: neuron-to-weight aggregation of the importance (min, max or mean).
        scheduler: an ``IMPORTANCE_SCHEDULERS`` entry (task-fixed factor of ``c``).
        base_linear: ``b_L``.
        base_mask_sparsity_reg: ``b_R``.
        filter_by_cumulative_mask: multiply ``I`` by the parameter-wise cumulative mask.
    """

    reports_rate_statistics = True
    needs_network_sparsity = True

    def __init__(
        self,
        *,
        tracker: ImportanceTracker,
        alpha: float,
        aggregate,
        scheduler,
        base_linear: float,
        base_mask_sparsity_reg: float,
        filter_by_cumulative_mask: bool,
    ) -> None:
        self.tracker = tracker
        self.alpha = alpha
        self.aggregate = aggregate
        self.scheduler = scheduler
        self.base_linear = base_linear
        self.base_mask_sparsity_reg = base_mask_sparsity_reg
        self.filter_by_cumulative_mask = filter_by_cumulative_mask
        self._weighted: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._layout: FlatLayout | None = None
        self._flat_weighted = torch.zeros(0)

    def on_task_start(self, *, task_id: int, layers: tuple[LayerContext, ...], masker) -> None:
        """Precompute ``task_factor * I / alpha`` per parameter for the task."""
        importance = self.tracker.summative()
        summative_mask = masker.store.summative()
        self._weighted = {}
        for layer in layers:
            weight = to_weight_shape(layer.layer, layer.weight, importance, self.aggregate)
            bias = neuron_to_bias(importance[layer.layer.mask_key])
            if self.filter_by_cumulative_mask:
                weight = weight * layer.cumulative_weight
                bias = bias * layer.cumulative_bias
            factor_w, factor_b = self.scheduler(
                task_id=task_id,
                layer=layer,
                summative_mask=summative_mask,
                base_linear=self.base_linear,
            )
            self._weighted[layer.layer.name] = (
                factor_w * weight / self.alpha,
                factor_b * bias / self.alpha,
            )
        self._layout = FlatLayout.of(layers, masker.store.keys)
        self._flat_weighted = self._layout.flatten(
            [
                self._weighted[layer.layer.name][int(is_bias)]
                for layer, is_bias in adjusted_parameters(layers)
            ]
        )

    def step_rates(
        self,
        *,
        task_id: int,
        layers: tuple[LayerContext, ...],
        network_sparsity: NetworkSparsity | None,
    ) -> list[torch.Tensor | None]:
        """Every layer's rate at once: ``1 / (1 + I' (R_l + b_R))`` over the flat ``I'``."""
        values = 0.0 if network_sparsity is None else network_sparsity.values
        step_factor = fg_adahat_step_factor(
            network_sparsity=values, base_mask_sparsity_reg=self.base_mask_sparsity_reg
        )
        if network_sparsity is not None:
            step_factor = self._layout.per_entry(step_factor)
        rate = adjustment_rate_from_inverse(self._flat_weighted, inverse_k=step_factor)
        return self._layout.unflatten(rate)

    def rates(
        self, *, task_id: int, layer: LayerContext, network_sparsity: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        step_factor = fg_adahat_step_factor(
            network_sparsity=0.0 if network_sparsity is None else network_sparsity,
            base_mask_sparsity_reg=self.base_mask_sparsity_reg,
        )
        weight, bias = self._weighted[layer.layer.name]
        weight_rate = adjustment_rate_from_inverse(weight, inverse_k=step_factor)
        bias_rate = (
            None
            if layer.bias is None
            else adjustment_rate_from_inverse(bias, inverse_k=step_factor)
        )
        return weight_rate, bias_rate


@dataclass(frozen=True, kw_only=True)
class TrackingOptions:
    """FG-AdaHAT's options of the importance tracking (docs/spec.md §5, §7).

    Attributes:
        filter_unmasked_importance: multiply each task importance by the task's binary mask.
        step_multiply_training_mask: multiply each step's importance by the soft training mask.
        importance_summing_strategy_linear_step: > 0, required by ``linear_decrease``.
        importance_summing_strategy_exponential_rate: > 1, required by ``exponential_decrease``.
        importance_summing_strategy_log_base: > 1, required by ``log_decrease``.
    """

    filter_unmasked_importance: bool = False
    step_multiply_training_mask: bool = True
    importance_summing_strategy_linear_step: float | None = None
    importance_summing_strategy_exponential_rate: float | None = None
    importance_summing_strategy_log_base: float | None = None


#: Where FG-AdaHAT's options beyond its own parameters are defined: the shared HAT-family options,
#: the tracking options, and the options of the measures' plugins (each plugin's constructor).
OPTION_SOURCES = (HATOptions, TrackingOptions, StochasticGatesPlugin)


@options_signature(*OPTION_SOURCES)
class FGAdaHAT(HATFamily):
    """Fine-grained AdaHAT: adjustment rates from accumulated neuron-wise importance.

    The defaults are the reference experiment's values (docs/spec.md §5), the same as
    ``hatcl run algorithm=fgadahat``.

    Args:
        adjustment_intensity: alpha > 0.
        importance_type: an ``IMPORTANCE_TYPES`` entry or an import path (docs/spec.md §6).
        importance_summing_strategy: a ``SUMMING_STRATEGIES`` entry (docs/spec.md §7).
        importance_scheduler_type: ``linear_sparsity_reg``, ``sparsity_reg`` or
            ``summative_mask_sparsity_reg``.
        neuron_to_weight_importance_aggregation_mode: ``min``, ``max`` or ``mean``.
        base_importance: b_I >= 0, added to every task importance.
        base_mask_sparsity_reg: b_R > 0.
        base_linear: b_L > 0.
        filter_by_cumulative_mask: multiply the importance by the parameter-wise cumulative mask.
        **options: the shared HAT-family options (:class:`HATOptions`), the tracking options
            (:class:`TrackingOptions`) and the plugin options (``stochastic_gates_reg_weight``
            >= 0 and ``stochastic_gates_std`` > 0, used by ``importance_type=stochastic_gates``:
            :class:`~hatcl.importance.stochastic_gates.StochasticGatesPlugin`); the class's
            signature lists each with its default.

    A strategy's parameter is read (and validated) only when that strategy is chosen; the
    plugin options are validated whatever the importance type.
    """

    def __init__(
        self,
        *,
        adjustment_intensity: float = 1.5e-7,
        importance_type: str = "input_weight_gradient_abs_sum",
        importance_summing_strategy: str = "add_all",
        importance_scheduler_type: str = "linear_sparsity_reg",
        neuron_to_weight_importance_aggregation_mode: str = "min",
        base_importance: float = 1.0e-8,
        base_mask_sparsity_reg: float = 0.1,
        base_linear: float = 5.0,
        filter_by_cumulative_mask: bool = False,
        **options: Any,
    ) -> None:
        shared, tracking, plugin = split_options(options, OPTION_SOURCES, owner="FGAdaHAT")
        StochasticGatesPlugin(**plugin)  # its options are checked whatever the importance type
        alpha = check_number(
            adjustment_intensity, parameter="adjustment_intensity", low=0.0, low_inclusive=False
        )
        tracker = ImportanceTracker(
            measure=checked_measure(
                resolve_importance(importance_type),
                name=importance_type,
            ),
            **_summing(importance_summing_strategy, tracking),
            base_importance=check_number(base_importance, parameter="base_importance", low=0.0),
            filter_unmasked_importance=check_bool(
                tracking["filter_unmasked_importance"], parameter="filter_unmasked_importance"
            ),
            step_multiply_training_mask=check_bool(
                tracking["step_multiply_training_mask"], parameter="step_multiply_training_mask"
            ),
            plugin_options=plugin,
        )
        rule = FGAdaHATRule(
            tracker=tracker,
            alpha=alpha,
            aggregate=AGGREGATIONS.resolve(
                neuron_to_weight_importance_aggregation_mode,
                parameter="neuron_to_weight_importance_aggregation_mode",
            ),
            scheduler=IMPORTANCE_SCHEDULERS.resolve(
                importance_scheduler_type, parameter="importance_scheduler_type"
            ),
            base_linear=_positive(base_linear, "base_linear"),
            base_mask_sparsity_reg=_positive(base_mask_sparsity_reg, "base_mask_sparsity_reg"),
            filter_by_cumulative_mask=check_bool(
                filter_by_cumulative_mask, parameter="filter_by_cumulative_mask"
            ),
        )
        super().__init__(rule=rule, tracker=tracker, **shared)
        self.adjustment_intensity = alpha
        self.importance_type = importance_type
        self.importance_summing_strategy = importance_summing_strategy
        self.importance_scheduler_type = importance_scheduler_type


def _summing(strategy: str, options: dict[str, object]) -> dict[str, object]:
    """The summing strategy entry and its own parameter (validated by the strategy)."""
    name = SUMMING_STRATEGIES.validate(strategy, parameter="importance_summing_strategy")
    entry = SUMMING_STRATEGIES.get(name)
    value = options.get(entry.option) if entry.option is not None else None
    return {"summing": entry, "summing_option": entry.resolve_option(name=name, value=value)}


def _positive(value: object, parameter: str) -> float:
    return check_number(value, parameter=parameter, low=0.0, low_inclusive=False)
