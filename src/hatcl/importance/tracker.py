"""The importance tracker: FG-AdaHAT's neuron-wise importance over a task sequence.

It owns the measure and its plugin, the per-task accumulator (buffers of an
:class:`ImportanceStore`), the step count, the step filters, and the summing strategy that turns
task importances into the summative importance the FG-AdaHAT rule reads.

Per step (after the optimizer step, docs/spec.md §3 step 9): the measure's raw neuron-wise
importance, min-max normalised per layer, optionally times the step's soft training mask, is added
to the accumulator. At the end of the task ``I^t = sum / steps + b_I`` (optionally times the task's
binary mask) is stored and the summing strategy updates the summative importance. The
accumulator is a sum and a count: :meth:`distributed_sums` lists them for the runner's one
cross-process reduction, which runs before :meth:`on_task_end`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import nn

from hatcl.backbones.model import ContinualModel
from hatcl.backbones.step_context import StepContext
from hatcl.functional.reductions import min_max_normalise
from hatcl.importance.base import ImportanceContext, ImportanceMeasure, ImportancePlugin
from hatcl.importance.store import ImportanceStore
from hatcl.importance.summing import SummingStrategy


class ImportanceTracker(nn.Module):
    """Accumulates a measure's step importances into task and summative importances.

    Args:
        measure: the importance measure (an ``IMPORTANCE_TYPES`` entry).
        summing: the summing strategy (a ``SUMMING_STRATEGIES`` entry).
        summing_option: the strategy's own parameter (validated by the strategy), or ``None``.
        base_importance: ``b_I`` added to every task importance.
        filter_unmasked_importance: multiply each task importance by the task's binary mask.
        step_multiply_training_mask: multiply each step's importance by the soft training mask.
        plugin_options: keyword options offered to the measure's plugin (it takes the ones it
            names), e.g. ``stochastic_gates_std``.
    """

    def __init__(
        self,
        *,
        measure: ImportanceMeasure,
        summing: SummingStrategy,
        summing_option: float | None,
        base_importance: float,
        filter_unmasked_importance: bool,
        step_multiply_training_mask: bool,
        plugin_options: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__()
        self.measure = measure
        self.summing = summing
        self.summing_option = summing_option
        self.base_importance = base_importance
        self.filter_unmasked_importance = filter_unmasked_importance
        self.step_multiply_training_mask = step_multiply_training_mask
        self.store = ImportanceStore()
        self.plugin: ImportancePlugin | None = _build_plugin(measure, plugin_options or {})
        self._task_step = 0

    # -- task hooks ---------------------------------------------------------------------------

    def on_task_start(
        self, *, unit_counts: Mapping[str, int], like: torch.Tensor
    ) -> None:
        """Create the buffers (device and dtype of ``like``) if needed; reset the accumulator."""
        self.store.ensure_keys(unit_counts, like=like)
        self.store.reset_accumulator()
        self._task_step = 0  # seeds the measures' own random draws (never the training RNG)

    def install_plugin(self, *, task_id: int, model: ContinualModel) -> None:
        """Set up the measure's plugin (if any) for the task."""
        if self.plugin is not None:
            self.plugin.on_task_start(task_id=task_id, model=model)

    def parameters_to_train(self) -> Iterator[nn.Parameter]:
        """The plugin's parameters (trained with the model during the task)."""
        if self.plugin is not None:
            yield from self.plugin.parameters()

    def loss_terms(self, context: StepContext) -> dict[str, torch.Tensor]:
        """The plugin's loss terms of the step (none without a plugin)."""
        return {} if self.plugin is None else self.plugin.loss_terms(context)

    @torch.no_grad()
    def observe(self, context: StepContext) -> None:
        """Add the step's normalised (and optionally masked) importance to the accumulator.

        A step the grad scaler skipped (``context.gradients_finite`` false) adds nothing and is
        not counted (selected on the device, no host sync).
        """
        self._task_step += 1
        raw = self.measure.compute(
            ImportanceContext.from_step(context, step=self._task_step, plugin=self.plugin)
        )
        values = {key: min_max_normalise(value) for key, value in raw.items()}
        if self.step_multiply_training_mask:
            masks = context.output.backbone.masks
            values = {key: value * masks[key].detach() for key, value in values.items()}
        self.store.observe(values, applied=context.gradients_finite)

    def distributed_sums(self) -> list[torch.Tensor]:
        """The accumulator and its step count: summed across processes before the task end."""
        return self.store.accumulator_tensors()

    def on_task_end(
        self, *, task_id: int, model: ContinualModel, task_masks: Mapping[str, torch.Tensor]
    ) -> None:
        """Remove the plugin; store ``I^t`` and update the summative importance."""
        if self.plugin is not None:
            self.plugin.on_task_end(task_id=task_id, model=model)
        task_importance = self.store.task_average(base=self.base_importance)
        if self.filter_unmasked_importance:
            task_importance = {k: v * task_masks[k] for k, v in task_importance.items()}
        self.store.store_task(task_id=task_id, importances=task_importance)
        history = self.store.task_importances()
        summative = self.store.summative()
        self.store.set_summative(
            {
                key: self.summing.combine(summative[key], history[key], self.summing_option)
                for key in summative
            }
        )

    # -- reading --------------------------------------------------------------------------------

    def summative(self) -> dict[str, torch.Tensor]:
        """The summative importance per mask key (what the FG-AdaHAT rule reads)."""
        return self.store.summative()

    def task_summary(self, task_id: int) -> dict[str, dict[str, float]]:
        """Per mask key, the task's and the summative importance (means and extremes)."""
        task = self.store.task_importance(task_id)
        summative = self.store.summative()
        return {
            key: {
                "task_mean": float(task[key].mean()),
                "task_min": float(task[key].min()),
                "task_max": float(task[key].max()),
                "summative_mean": float(summative[key].mean()),
                "summative_max": float(summative[key].max()),
            }
            for key in summative
        }


def _build_plugin(
    measure: ImportanceMeasure, options: Mapping[str, object]
) -> ImportancePlugin | None:
    """The measure's plugin built from the options it names (it validates them itself)."""
    if measure.plugin is None:
        return None
    return measure.plugin(**{name: options[name] for name in measure.plugin_options})
