"""FG-AdaHAT: AdaHAT guided by fine-grained neuron-wise importance (Wang et al., 2025), spec §5.

The HAT mechanism with the rule ``rate = alpha / (c * I + alpha)``: ``I`` is the summative
importance of earlier tasks made parameter-wise (fixed during a task, so computed once per task
with the task-fixed part of the scheduler factor ``c`` folded in), and a step only computes the
scalar ``R_l + b_R`` of each layer and the rate.

Importance is observed after every optimizer step (spec §3 step 9): the measure's raw
neuron-wise importance, min-max normalised per layer, optionally times the step's soft training
mask, is added to a per-task accumulator (a sum and a step count, in buffers). At the end of the
task ``I^t = sum / steps + b_I`` (optionally times the task's binary mask) is stored and the
summing strategy updates the summative importance.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import nn

from hatcl.algorithms.adahat import AdaptiveRateReporting
from hatcl.algorithms.base import StepContext
from hatcl.algorithms.fgadahat_options import SummingStrategy
from hatcl.algorithms.hat import HAT, _masker
from hatcl.algorithms.hat_mechanism import AdjustmentRule, LayerContext, to_weight_shape
from hatcl.algorithms.registries import IMPORTANCE_SCHEDULERS, SUMMING_STRATEGIES
from hatcl.backbones.model import ContinualModel
from hatcl.data.base import TaskData
from hatcl.functional.aggregation import neuron_to_bias
from hatcl.functional.rates import fg_adahat_rate_scaled
from hatcl.functional.reductions import min_max_normalise
from hatcl.importance.base import ImportanceContext, ImportanceMeasure, ImportancePlugin
from hatcl.importance.registry import IMPORTANCE_TYPES
from hatcl.importance.store import ImportanceStore
from hatcl.masking.registries import AGGREGATIONS
from hatcl.validation import check_finite, check_number


class FGAdaHATRule(AdjustmentRule):
    """FG-AdaHAT's rates ``alpha / (c * I + alpha)``.

    Args:
        store: the importance buffers (read for the summative importance at task start).
        alpha: ``adjustment_intensity``.
        aggregate: neuron-to-weight aggregation of the importance (min, max or mean).
        scheduler: an ``IMPORTANCE_SCHEDULERS`` entry (task-fixed factor of ``c``).
        base_linear: ``b_L``.
        base_mask_sparsity_reg: ``b_R``.
        filter_by_cumulative_mask: multiply ``I`` by the parameter-wise cumulative mask.
    """

    def __init__(
        self,
        *,
        store: ImportanceStore,
        alpha: float,
        aggregate,
        scheduler,
        base_linear: float,
        base_mask_sparsity_reg: float,
        filter_by_cumulative_mask: bool,
    ) -> None:
        self.store = store
        self.alpha = alpha
        self.aggregate = aggregate
        self.scheduler = scheduler
        self.base_linear = base_linear
        self.base_mask_sparsity_reg = base_mask_sparsity_reg
        self.filter_by_cumulative_mask = filter_by_cumulative_mask
        self._weighted: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def on_task_start(self, *, task_id: int, layers: tuple[LayerContext, ...], masker) -> None:
        """Precompute ``task_factor * I / alpha`` per parameter for the task."""
        importance = self.store.summative()
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

    def rates(
        self, *, task_id: int, layer: LayerContext, network_sparsity: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        sparsity = 0.0 if network_sparsity is None else network_sparsity
        step_factor = sparsity + self.base_mask_sparsity_reg
        weight, bias = self._weighted[layer.layer.name]
        weight_rate = fg_adahat_rate_scaled(weight, scheduler_factor=step_factor)
        bias_rate = (
            None
            if layer.bias is None
            else fg_adahat_rate_scaled(bias, scheduler_factor=step_factor)
        )
        return weight_rate, bias_rate


class FGAdaHAT(AdaptiveRateReporting, HAT):
    """Fine-grained AdaHAT: adjustment rates from accumulated neuron-wise importance.

    Args:
        adjustment_intensity: alpha > 0 (presets: 1.5e-7).
        importance_type: an ``IMPORTANCE_TYPES`` entry (spec §6).
        importance_summing_strategy: a ``SUMMING_STRATEGIES`` entry (spec §7).
        importance_scheduler_type: ``linear_sparsity_reg``, ``sparsity_reg`` or
            ``summative_mask_sparsity_reg``.
        neuron_to_weight_importance_aggregation_mode: ``min``, ``max`` or ``mean``.
        mask_sparsity_reg_factor: weight of the mask sparsity regulariser (>= 0).
        s_max: the largest mask scale (> 1).
        clamp_threshold: clamp of ``s * e`` in the embedding gradient compensation (> 0).
        mask_sparsity_reg_mode: ``original`` or ``cross``.
        base_importance: b_I >= 0, added to every task importance.
        base_mask_sparsity_reg: b_R > 0.
        base_linear: b_L > 0.
        filter_by_cumulative_mask: multiply the importance by the parameter-wise cumulative mask.
        filter_unmasked_importance: multiply each task importance by the task's binary mask.
        step_multiply_training_mask: multiply each step's importance by the soft training mask.
        task_embedding_init_mode: ``N01``, ``U-11``, ``U01``, ``U-10`` or ``last``.
        importance_summing_strategy_linear_step: > 0, required by ``linear_decrease``.
        importance_summing_strategy_exponential_rate: > 1, required by ``exponential_decrease``.
        importance_summing_strategy_log_base: > 1, required by ``log_decrease``.
        embedding_clamp: clamp embeddings to [-value, value] after each step (None: off).
        stochastic_gates_reg_weight: weight (>= 0) of the gates' L0 regulariser in the loss,
            used by ``importance_type=stochastic_gates``.
        stochastic_gates_std: noise standard deviation (> 0) of those gates.

    A measure with a plugin (e.g. ``stochastic_gates``) gets it built once from the parameters
    it names and driven through the task and step hooks; the plugin leaves nothing in this
    module's or the model's ``state_dict``.

    A strategy parameter is required exactly when its strategy is chosen; given for another
    strategy it is still range-checked, then unused (so one sweep can vary the strategy).
    """

    def __init__(
        self,
        *,
        adjustment_intensity: float,
        importance_type: str,
        importance_summing_strategy: str,
        importance_scheduler_type: str,
        neuron_to_weight_importance_aggregation_mode: str,
        mask_sparsity_reg_factor: float,
        s_max: float = 400.0,
        clamp_threshold: float = 50.0,
        mask_sparsity_reg_mode: str = "original",
        base_importance: float = 0.01,
        base_mask_sparsity_reg: float = 0.1,
        base_linear: float = 10.0,
        filter_by_cumulative_mask: bool = False,
        filter_unmasked_importance: bool = False,
        step_multiply_training_mask: bool = True,
        task_embedding_init_mode: str = "N01",
        importance_summing_strategy_linear_step: float | None = None,
        importance_summing_strategy_exponential_rate: float | None = None,
        importance_summing_strategy_log_base: float | None = None,
        embedding_clamp: float | None = None,
        stochastic_gates_reg_weight: float = 0.001,
        stochastic_gates_std: float = 0.5,
    ) -> None:
        torch.nn.Module.__init__(self)
        alpha = check_number(
            adjustment_intensity, parameter="adjustment_intensity", low=0.0, low_inclusive=False
        )
        self.adjustment_intensity = alpha
        self.importance_type = IMPORTANCE_TYPES.validate(
            importance_type, parameter="importance_type"
        )
        self.measure: ImportanceMeasure = IMPORTANCE_TYPES.get(importance_type)
        self.importance_summing_strategy = SUMMING_STRATEGIES.validate(
            importance_summing_strategy, parameter="importance_summing_strategy"
        )
        self.summing: SummingStrategy = SUMMING_STRATEGIES.get(importance_summing_strategy)
        self.summing_option = _strategy_option(
            importance_summing_strategy,
            self.summing,
            {
                "importance_summing_strategy_linear_step": importance_summing_strategy_linear_step,
                "importance_summing_strategy_exponential_rate": (
                    importance_summing_strategy_exponential_rate
                ),
                "importance_summing_strategy_log_base": importance_summing_strategy_log_base,
            },
        )
        self.importance_scheduler_type = IMPORTANCE_SCHEDULERS.validate(
            importance_scheduler_type, parameter="importance_scheduler_type"
        )
        aggregation = AGGREGATIONS.validate(
            neuron_to_weight_importance_aggregation_mode,
            parameter="neuron_to_weight_importance_aggregation_mode",
        )
        self.neuron_to_weight_importance_aggregation_mode = aggregation
        self.base_importance = check_number(base_importance, parameter="base_importance", low=0.0)
        self.base_mask_sparsity_reg = _positive(base_mask_sparsity_reg, "base_mask_sparsity_reg")
        self.base_linear = _positive(base_linear, "base_linear")
        self.filter_by_cumulative_mask = _flag(
            filter_by_cumulative_mask, "filter_by_cumulative_mask"
        )
        self.filter_unmasked_importance = _flag(
            filter_unmasked_importance, "filter_unmasked_importance"
        )
        self.step_multiply_training_mask = _flag(
            step_multiply_training_mask, "step_multiply_training_mask"
        )
        self.importance = ImportanceStore()
        self.stochastic_gates_reg_weight = check_finite(
            stochastic_gates_reg_weight, parameter="stochastic_gates_reg_weight"
        )
        self.stochastic_gates_std = check_finite(
            stochastic_gates_std, parameter="stochastic_gates_std", positive=True
        )
        self.plugin: ImportancePlugin | None = None
        self._task_step = 0
        if self.measure.plugin is not None:
            options = {name: getattr(self, name) for name in self.measure.plugin_options}
            self.plugin = self.measure.plugin(**options)
        self._init_shared(
            s_max=s_max,
            clamp_threshold=clamp_threshold,
            mask_sparsity_reg_factor=mask_sparsity_reg_factor,
            mask_sparsity_reg_mode=mask_sparsity_reg_mode,
            task_embedding_init_mode=task_embedding_init_mode,
            embedding_clamp=embedding_clamp,
            rule=FGAdaHATRule(
                store=self.importance,
                alpha=alpha,
                aggregate=AGGREGATIONS.get(aggregation),
                scheduler=IMPORTANCE_SCHEDULERS.get(importance_scheduler_type),
                base_linear=self.base_linear,
                base_mask_sparsity_reg=self.base_mask_sparsity_reg,
                filter_by_cumulative_mask=self.filter_by_cumulative_mask,
            ),
        )

    # -- task hooks ---------------------------------------------------------------------------

    def on_task_start(self, *, task_id: int, model: ContinualModel) -> None:
        """Create the importance buffers if needed, reset the accumulator, precompute rates."""
        masker = _masker(model)
        device = next(iter(masker.embeddings.values())).device
        self.importance.ensure_keys(masker.unit_counts, device=device)
        self.importance.reset_accumulator()
        self._task_step = 0  # seeds the measures' own random draws (never the training RNG)
        super().on_task_start(task_id=task_id, model=model)
        if self.plugin is not None:
            self.plugin.on_task_start(task_id=task_id, model=model)

    def trainable_parameters(self, model: ContinualModel) -> Iterator[nn.Parameter]:
        """The model's trainable parameters, then the importance plugin's (if any)."""
        yield from super().trainable_parameters(model)
        if self.plugin is not None:
            yield from self.plugin.parameters()

    def on_task_end(self, *, task_id: int, model: ContinualModel, task_data: TaskData) -> None:
        """Remove the plugin; store the masks, ``I^t`` and the new summative importance."""
        if self.plugin is not None:
            self.plugin.on_task_end(task_id=task_id, model=model)
        super().on_task_end(task_id=task_id, model=model, task_data=task_data)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            self.importance.all_reduce_accumulator(torch.distributed.all_reduce)
        task_importance = self.importance.task_average(base=self.base_importance)
        if self.filter_unmasked_importance:
            masks = _masker(model).store.mask(task_id)
            task_importance = {k: v * masks[k] for k, v in task_importance.items()}
        self.importance.store_task(task_id=task_id, importances=task_importance)
        history = self.importance.task_importances()
        summative = self.importance.summative()
        self.importance.set_summative(
            {
                key: self.summing.combine(summative[key], history[key], self.summing_option)
                for key in summative
            }
        )

    # -- step hooks ---------------------------------------------------------------------------

    def loss_terms(self, context: StepContext) -> dict[str, torch.Tensor]:
        """HAT's mask sparsity term, plus the importance plugin's terms (if any)."""
        terms = super().loss_terms(context)
        if self.plugin is not None:
            terms.update(self.plugin.loss_terms(context))
        return terms

    @torch.no_grad()
    def after_optimizer_step(self, context: StepContext) -> None:
        """Optional embedding clamp, then observe the step's neuron-wise importance."""
        super().after_optimizer_step(context)
        self._task_step += 1
        raw = self.measure.compute(
            ImportanceContext.from_step(context, step=self._task_step, plugin=self.plugin)
        )
        self.importance.observe(self._step_importance(raw, context.output.backbone.masks))

    def _step_importance(
        self, raw: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        values = {key: min_max_normalise(value) for key, value in raw.items()}
        if self.step_multiply_training_mask:
            values = {key: value * masks[key].detach() for key, value in values.items()}
        return values

    # -- reporting ----------------------------------------------------------------------------

    def step_metrics(self) -> dict[str, float]:
        return self.rate_statistics()

    def task_summary(self, *, task_id: int, model: ContinualModel) -> dict[str, object]:
        """HAT's mask usage and capacity, plus per layer the task and summative importance."""
        summary = super().task_summary(task_id=task_id, model=model)
        task = self.importance.task_importance(task_id)
        summative = self.importance.summative()
        summary["importance"] = {
            key: {
                "task_mean": float(task[key].mean()),
                "task_min": float(task[key].min()),
                "task_max": float(task[key].max()),
                "summative_mean": float(summative[key].mean()),
                "summative_max": float(summative[key].max()),
            }
            for key in summative
        }
        return summary


def _strategy_option(
    strategy: str, entry: SummingStrategy, options: Mapping[str, float | None]
) -> float | None:
    """Validate every strategy parameter; return the chosen strategy's own (required) one."""
    entries = (SUMMING_STRATEGIES.get(name) for name in SUMMING_STRATEGIES.names())
    lows = {e.option: e.option_low for e in entries if e.option is not None}
    for name, value in options.items():
        if value is not None:
            check_number(value, parameter=name, low=lows[name], low_inclusive=False)
    if entry.option is None:
        return None
    value = options[entry.option]
    if value is None:
        raise ValueError(
            f"importance_summing_strategy {strategy!r} requires {entry.option} "
            f"(a number > {entry.option_low:g}), got None"
        )
    return float(value)


def _positive(value: object, parameter: str) -> float:
    return check_number(value, parameter=parameter, low=0.0, low_inclusive=False)


def _flag(value: object, parameter: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{parameter} must be a bool (true or false), got {value!r}")
    return value
