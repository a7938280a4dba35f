"""The HAT-family mechanism (docs/spec.md §1-§5): masks per task and rate-adjusted gradients.

HAT, AdaHAT and FG-AdaHAT are this one algorithm with different injected parts: an
:class:`~hatcl.algorithms.hat_mechanism.AdjustmentRule` (how much of each used parameter's
gradient a step keeps) and, for FG-AdaHAT, an
:class:`~hatcl.importance.tracker.ImportanceTracker` (the neuron-wise importance the rule reads).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from hatcl.algorithms.base import Algorithm, StepContext, TaskView
from hatcl.algorithms.hat_mechanism import (
    AdjustmentRule,
    LayerContext,
    NetworkSparsity,
    adjusted_parameters,
    build_layer_contexts,
)
from hatcl.algorithms.rate_statistics import network_capacity, rate_statistics
from hatcl.backbones.model import ContinualModel
from hatcl.functional.annealing import annealed_scale
from hatcl.functional.compensation import embedding_compensation_factor
from hatcl.functional.sparsity import LayerSparsity
from hatcl.importance.tracker import ImportanceTracker
from hatcl.masking.masker import FlatMasks, HATMasker
from hatcl.masking.registries import INIT_MODES, SPARSITY_LINEAR_FORMS, SPARSITY_MODES
from hatcl.validation import check_number


class HATFamily(Algorithm):
    """Hard attention masks per task; gradients of used units are scaled by an injected rule.

    Args:
        rule: the adjustment rule (HAT's, AdaHAT's or FG-AdaHAT's).
        tracker: the neuron-wise importance tracker the rule reads (FG-AdaHAT), or ``None``.
        s_max: the largest mask scale (> 1; end of annealing, validation).
        clamp_threshold: clamp of ``s * e`` in the embedding gradient compensation (> 0).
        mask_sparsity_reg_factor: weight of the mask sparsity regulariser (>= 0).
        mask_sparsity_reg_mode: ``original`` or ``cross``.
        task_embedding_init_mode: ``N01``, ``U-11``, ``U01``, ``U-10`` or ``last``.
        embedding_clamp: clamp embeddings to [-value, value] after each step (> 0; None: off).
    """

    uses_masks = True
    per_task_network = True

    def __init__(
        self,
        *,
        rule: AdjustmentRule,
        tracker: ImportanceTracker | None = None,
        s_max: float,
        clamp_threshold: float,
        mask_sparsity_reg_factor: float,
        mask_sparsity_reg_mode: str,
        task_embedding_init_mode: str,
        embedding_clamp: float | None,
    ) -> None:
        super().__init__()
        self.s_max = check_number(s_max, parameter="s_max", low=1.0, low_inclusive=False)
        self.clamp_threshold = check_number(
            clamp_threshold, parameter="clamp_threshold", low=0.0, low_inclusive=False
        )
        self.mask_sparsity_reg_factor = check_number(
            mask_sparsity_reg_factor, parameter="mask_sparsity_reg_factor", low=0.0
        )
        self.mask_sparsity_reg_mode = SPARSITY_MODES.validate(
            mask_sparsity_reg_mode, parameter="mask_sparsity_reg_mode"
        )
        self.sparsity = SPARSITY_MODES.get(self.mask_sparsity_reg_mode)
        self.task_embedding_init_mode = INIT_MODES.validate(
            task_embedding_init_mode, parameter="task_embedding_init_mode"
        )
        self.embedding_clamp = (
            None
            if embedding_clamp is None
            else check_number(
                embedding_clamp, parameter="embedding_clamp", low=0.0, low_inclusive=False
            )
        )
        self.rule = rule
        self.tracker = tracker
        self._layers: tuple[LayerContext, ...] = ()
        self._adjusted_params: list[nn.Parameter] = []
        self._reg_form: tuple[torch.Tensor, torch.Tensor] = (torch.zeros(0), torch.zeros(0))
        self._layer_sparsity: LayerSparsity | None = None
        self._sparsity_keys: tuple[str, ...] = ()
        # the last step's layers and rates, grouped per mask key only when read (reporting)
        self._step_rates: tuple[tuple[LayerContext, ...], list[torch.Tensor | None]] = ((), [])

    # -- task hooks -------------------------------------------------------------------------

    def on_task_start(self, *, task_id: int, model: ContinualModel) -> None:
        """Re-initialise the task embeddings; precompute the rule's per-task quantities."""
        masker = masker_of(model)
        if self.tracker is not None:
            like = next(iter(masker.embeddings.values()))
            self.tracker.on_task_start(unit_counts=masker.unit_counts, like=like)
        masker.reset_embeddings(init_mode=self.task_embedding_init_mode)
        cumulative = masker.store.cumulative()
        self._layers = build_layer_contexts(model.backbone.layer_modules(), cumulative)
        self._adjusted_params = [
            layer.bias if is_bias else layer.weight
            for layer, is_bias in adjusted_parameters(self._layers)
        ]
        self._prepare_sparsity(cumulative, like=next(iter(masker.embeddings.values())))
        self.rule.on_task_start(task_id=task_id, layers=self._layers, masker=masker)
        if self.tracker is not None:
            self.tracker.install_plugin(task_id=task_id, model=model)

    def trainable_parameters(self, model: ContinualModel) -> Iterator[nn.Parameter]:
        """The model's trainable parameters, then the importance plugin's (if any)."""
        yield from super().trainable_parameters(model)
        if self.tracker is not None:
            yield from self.tracker.parameters_to_train()

    def distributed_sums(self) -> list[torch.Tensor]:
        """The importance accumulator and its step count (nothing without a tracker)."""
        return [] if self.tracker is None else self.tracker.distributed_sums()

    def on_task_end(self, *, task_id: int, model: ContinualModel, task_data: TaskView) -> None:
        """Store the task's binary masks; let the tracker store the task's importance."""
        masker = masker_of(model)
        masker.store_current(task_id=task_id)
        if self.tracker is not None:
            self.tracker.on_task_end(
                task_id=task_id, model=model, task_masks=masker.store.mask(task_id)
            )

    # -- step hooks -------------------------------------------------------------------------

    def training_scale(self, *, batch_index: int, num_batches: int) -> float:
        return annealed_scale(batch_index=batch_index, num_batches=num_batches, s_max=self.s_max)

    def evaluation_scale(self) -> float:
        return self.s_max

    def loss_terms(self, context: StepContext) -> dict[str, torch.Tensor]:
        """The mask sparsity term (and the importance plugin's terms, if any).

        The term and every layer's R_l come from the task's affine form of the concatenated
        masks (the factor folded into the term's row); R_l, if the rule reads it, is kept in
        the step's cache for :meth:`adjust_gradients`.
        """
        flat = self._flat_masks(context)
        weights, offset = self._reg_form
        reg = torch.addmv(offset.to(flat.dtype), weights.to(flat.dtype), flat).squeeze(0)
        if self.rule.needs_network_sparsity:
            self._network_sparsity(context, flat=flat)
        terms = {"mask_sparsity": reg}
        if self.tracker is not None:
            terms.update(self.tracker.loss_terms(context))
        return terms

    @torch.no_grad()
    def adjust_gradients(self, context: StepContext) -> None:
        """Multiply each backbone weight and bias gradient by its adjustment rate.

        The rule gives every parameter's rate at once; one ``_foreach_mul_`` applies them all.
        """
        sparsity = self._network_sparsity(context) if self.rule.needs_network_sparsity else None
        rates = self.rule.step_rates(
            task_id=context.task_id, layers=self._layers, network_sparsity=sparsity
        )
        grads, factors = [], []
        for parameter, rate in zip(self._adjusted_params, rates):
            if rate is not None and parameter.grad is not None:
                grads.append(parameter.grad)
                factors.append(rate if rate.dim() else rate.expand_as(parameter))
        if grads:
            torch._foreach_mul_(grads, factors)
        self._step_rates = (self._layers, rates)

    @torch.no_grad()
    def compensate_gradients(self, context: StepContext) -> None:
        """Embedding gradient compensation (docs/spec.md §1), with the step's annealed scale."""
        all_embeddings = list(masker_of(context.model).embeddings.values())
        embeddings = [e for e in all_embeddings if e.grad is not None]
        if not embeddings:
            return
        masks = context.output.backbone.masks
        if isinstance(masks, FlatMasks) and len(embeddings) == len(all_embeddings):
            joined = masks.embeddings  # the forward's concatenation: unchanged since
        else:
            joined = torch.cat([e.reshape(-1) for e in embeddings])
        # one elementwise pass over every layer's embedding, one multiply of all gradients
        factors = embedding_compensation_factor(
            joined, scale=context.scale, s_max=self.s_max, clamp_threshold=self.clamp_threshold
        )
        pieces = factors.split([e.numel() for e in embeddings])
        torch._foreach_mul_(
            [e.grad for e in embeddings], [f.view_as(e) for f, e in zip(pieces, embeddings)]
        )

    @torch.no_grad()
    def after_optimizer_step(self, context: StepContext) -> None:
        """Optional embedding clamp; then the tracker observes the step's importance."""
        if self.embedding_clamp is not None:
            for embedding in masker_of(context.model).embeddings.values():
                embedding.clamp_(-self.embedding_clamp, self.embedding_clamp)
        if self.tracker is not None:
            self.tracker.observe(context)

    def _network_sparsity(
        self, context: StepContext, *, flat: torch.Tensor | None = None
    ) -> NetworkSparsity:
        """The network sparsity R_l of the step's masks (docs/spec.md §2), once per step: from the
        step's cache, filled by :meth:`loss_terms` (or here if a loop skipped the loss)."""
        cached = context.cache.get("network_sparsity")
        if cached is None:
            flat = self._flat_masks(context) if flat is None else flat
            values = self._layer_sparsity.evaluate(flat)
            cached = NetworkSparsity(values=values, keys=self._sparsity_keys)
            context.cache["network_sparsity"] = cached
        return cached

    def _prepare_sparsity(self, cumulative: dict[str, torch.Tensor], *, like: torch.Tensor):
        """The task's sparsity term (factor folded in) and R_l as affine maps of the masks."""
        self._sparsity_keys = tuple(cumulative)
        form = SPARSITY_LINEAR_FORMS.get(self.mask_sparsity_reg_mode)(
            [cumulative[key].to(like) for key in self._sparsity_keys],
            factor=self.mask_sparsity_reg_factor,
        )
        self._reg_form = (form.weights[:1], form.offset[:1])
        self._layer_sparsity = form.layers

    def _flat_masks(self, context: StepContext) -> torch.Tensor:
        """The step's training masks of every mask key, concatenated in key order."""
        masks = context.output.backbone.masks
        if isinstance(masks, FlatMasks) and tuple(masks) == self._sparsity_keys:
            return masks.flat
        return torch.cat([masks[key].reshape(-1) for key in self._sparsity_keys])

    # -- reporting ---------------------------------------------------------------------------

    @property
    def layers(self) -> tuple[LayerContext, ...]:
        """The weighted layers of the current task with their parameter-wise cumulative mask."""
        return self._layers

    def last_rates(self) -> list[torch.Tensor]:
        """The adjustment rates of the last step, each in its parameter's shape, layer order."""
        return [rate for _, rates in _rates_by_layer(*self._step_rates) for rate in rates]

    def network_capacity(self) -> float | None:
        """Mean adjustment rate over every backbone weight and bias entry of the last step."""
        return network_capacity(self.last_rates())

    def step_metrics(self) -> dict[str, float]:
        if self.rule.reports_rate_statistics:
            return rate_statistics(_rates_by_layer(*self._step_rates))
        capacity = self.network_capacity()
        return {} if capacity is None else {"capacity": capacity}

    def task_summary(self, *, task_id: int, model: ContinualModel) -> dict[str, object]:
        """Mask usage per layer and capacity; per layer importance with a tracker."""
        store = masker_of(model).store
        task_masks, cumulative = store.mask(task_id), store.cumulative()
        summary: dict[str, object] = {
            "mask_usage": {
                key: {
                    "task": float(task_masks[key].mean()),
                    "cumulative": float(cumulative[key].mean()),
                }
                for key in cumulative
            },
            "capacity": self.network_capacity(),
        }
        if self.tracker is not None:
            summary["importance"] = self.tracker.task_summary(task_id)
        return summary


def _rates_by_layer(
    layers: tuple[LayerContext, ...], rates: list[torch.Tensor | None]
) -> list[tuple[str, list[torch.Tensor]]]:
    """The step's rates grouped per mask key (the layer names of every file), each in its
    parameter's shape (for reporting); layers sharing a mask (a ResNet block's conv2 and its
    shortcut) are one entry."""
    grouped: dict[str, list[torch.Tensor]] = {}
    position = 0
    for layer in layers:
        parameters = [layer.weight] if layer.bias is None else [layer.weight, layer.bias]
        applied = [
            rate.expand_as(parameter)
            for parameter, rate in zip(parameters, rates[position : position + len(parameters)])
            if rate is not None
        ]
        position += len(parameters)
        grouped.setdefault(layer.layer.mask_key, []).extend(applied)
    return list(grouped.items())


def masker_of(model: ContinualModel) -> HATMasker:
    """The HAT masker of ``model``'s backbone.

    Raises:
        TypeError: if the backbone has no masker (built without ``masked=True``).
    """
    masker = getattr(model.backbone, "masker", None)
    if masker is None:
        raise TypeError("HAT-family algorithms need a masked backbone (built with masked=True)")
    return masker
