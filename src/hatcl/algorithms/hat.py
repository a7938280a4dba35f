"""HAT: hard attention to the task (Serra et al., ICML 2018), spec §1-§3."""

from __future__ import annotations

import torch

from hatcl.algorithms.base import Algorithm, StepContext
from hatcl.algorithms.hat_mechanism import (
    AdjustmentRule,
    HATRule,
    LayerContext,
    build_layer_contexts,
)
from hatcl.algorithms.registries import HAT_ADJUSTMENT_MODES
from hatcl.backbones.model import ContinualModel
from hatcl.data.base import TaskData
from hatcl.functional.annealing import annealed_scale
from hatcl.functional.compensation import embedding_compensation_factor
from hatcl.masking.masker import HATMasker
from hatcl.masking.registries import INIT_MODES, SPARSITY_MODES
from hatcl.validation import check_number


class HAT(Algorithm):
    """Hard attention masks per task; gradients of units used by earlier tasks are blocked.

    Args:
        s_max: the largest mask scale (end of annealing, validation).
        clamp_threshold: clamp of ``s * e`` in the embedding gradient compensation.
        mask_sparsity_reg_factor: weight of the mask sparsity regulariser.
        mask_sparsity_reg_mode: ``original`` or ``cross``.
        task_embedding_init_mode: ``N01``, ``U-11``, ``U01``, ``U-10`` or ``last``.
        adjustment_mode: ``hat``, ``hat_random``, ``hat_const_alpha`` or ``hat_const_1``.
        alpha: the constant of ``hat_const_alpha`` (required by it, ignored otherwise).
        embedding_clamp: clamp embeddings to [-value, value] after each step (None: off).
    """

    uses_masks = True

    def __init__(
        self,
        *,
        s_max: float = 400.0,
        clamp_threshold: float = 50.0,
        mask_sparsity_reg_factor: float = 0.1,
        mask_sparsity_reg_mode: str = "original",
        task_embedding_init_mode: str = "N01",
        adjustment_mode: str = "hat",
        alpha: float | None = None,
        embedding_clamp: float | None = None,
    ) -> None:
        super().__init__()
        mode = HAT_ADJUSTMENT_MODES.validate(adjustment_mode, parameter="adjustment_mode")
        if mode == "hat_const_alpha" and alpha is None:
            raise ValueError(
                "adjustment_mode 'hat_const_alpha' requires alpha (a number in [0, 1])"
            )
        if alpha is not None:
            check_number(alpha, parameter="alpha", low=0.0, high=1.0)
        self._init_shared(
            s_max=s_max,
            clamp_threshold=clamp_threshold,
            mask_sparsity_reg_factor=mask_sparsity_reg_factor,
            mask_sparsity_reg_mode=mask_sparsity_reg_mode,
            task_embedding_init_mode=task_embedding_init_mode,
            embedding_clamp=embedding_clamp,
            rule=HATRule(rate=HAT_ADJUSTMENT_MODES.get(mode), alpha=alpha),
        )

    def _init_shared(
        self,
        *,
        s_max: float,
        clamp_threshold: float,
        mask_sparsity_reg_factor: float,
        mask_sparsity_reg_mode: str,
        task_embedding_init_mode: str,
        embedding_clamp: float | None,
        rule: AdjustmentRule,
    ) -> None:
        """Validate and store the parameters every HAT-family algorithm shares."""
        self.s_max = check_number(s_max, parameter="s_max", low=1.0, low_inclusive=False)
        self.clamp_threshold = check_number(
            clamp_threshold, parameter="clamp_threshold", low=0.0, low_inclusive=False
        )
        self.mask_sparsity_reg_factor = check_number(
            mask_sparsity_reg_factor, parameter="mask_sparsity_reg_factor", low=0.0
        )
        self.sparsity = SPARSITY_MODES.get(
            SPARSITY_MODES.validate(mask_sparsity_reg_mode, parameter="mask_sparsity_reg_mode")
        )
        self.task_embedding_init_mode = INIT_MODES.validate(
            task_embedding_init_mode, parameter="task_embedding_init_mode"
        )
        self.embedding_clamp = (
            None
            if embedding_clamp is None
            else check_number(embedding_clamp, parameter="embedding_clamp", low=0.0)
        )
        self.rule = rule
        self._layers: tuple[LayerContext, ...] = ()
        self._network_sparsity: dict[str, torch.Tensor] = {}
        self._last_rates: list[torch.Tensor] = []

    # -- task hooks -------------------------------------------------------------------------

    def on_task_start(self, *, task_id: int, model: ContinualModel) -> None:
        """Re-initialise the task embeddings and precompute the parameter-wise cumulative mask."""
        masker = _masker(model)
        masker.reset_embeddings(init_mode=self.task_embedding_init_mode)
        self._layers = build_layer_contexts(
            model.backbone.layer_modules(), masker.store.cumulative()
        )
        self.rule.on_task_start(task_id=task_id, layers=self._layers, masker=masker)

    def on_task_end(self, *, task_id: int, model: ContinualModel, task_data: TaskData) -> None:
        """Store the task's binary masks (and so update the cumulative mask)."""
        _masker(model).store_current(task_id=task_id)

    # -- step hooks -------------------------------------------------------------------------

    def training_scale(self, *, batch_index: int, num_batches: int) -> float:
        return annealed_scale(batch_index=batch_index, num_batches=num_batches, s_max=self.s_max)

    def evaluation_scale(self) -> float:
        return self.s_max

    def loss_terms(self, context: StepContext) -> dict[str, torch.Tensor]:
        """The mask sparsity term; also records the per-layer network sparsity R_l."""
        masks = context.output.backbone.masks
        cumulative = _masker(context.model).store.cumulative()
        keys = list(cumulative)
        result = self.sparsity([masks[k] for k in keys], [cumulative[k] for k in keys])
        self._network_sparsity = dict(zip(keys, result.per_layer))
        return {"mask_sparsity": self.mask_sparsity_reg_factor * result.reg}

    @torch.no_grad()
    def adjust_gradients(self, context: StepContext) -> None:
        """Multiply each backbone weight and bias gradient by its adjustment rate."""
        rates: list[torch.Tensor] = []
        for layer in self._layers:
            sparsity = self._network_sparsity.get(layer.layer.mask_key)
            weight_rate, bias_rate = self.rule.rates(
                task_id=context.task_id, layer=layer, network_sparsity=sparsity
            )
            _scale_grad(layer.weight, weight_rate, rates)
            if layer.bias is not None:
                _scale_grad(layer.bias, bias_rate, rates)
        self._last_rates = rates

    @torch.no_grad()
    def compensate_gradients(self, context: StepContext) -> None:
        """Embedding gradient compensation (spec §1), with the step's annealed scale."""
        for embedding in _masker(context.model).embeddings.values():
            if embedding.grad is not None:
                embedding.grad.mul_(
                    embedding_compensation_factor(
                        embedding,
                        scale=context.scale,
                        s_max=self.s_max,
                        clamp_threshold=self.clamp_threshold,
                    )
                )

    @torch.no_grad()
    def after_optimizer_step(self, context: StepContext) -> None:
        """Optional embedding clamp."""
        if self.embedding_clamp is not None:
            for embedding in _masker(context.model).embeddings.values():
                embedding.clamp_(-self.embedding_clamp, self.embedding_clamp)

    # -- reporting ---------------------------------------------------------------------------

    def network_capacity(self) -> float | None:
        """Mean adjustment rate over every backbone weight and bias entry of the last step."""
        if not self._last_rates:
            return None
        total = sum(rate.sum() for rate in self._last_rates)
        count = sum(rate.numel() for rate in self._last_rates)
        return float(total) / count

    def step_metrics(self) -> dict[str, float]:
        capacity = self.network_capacity()
        return {} if capacity is None else {"capacity": capacity}

    def task_summary(self, *, task_id: int, model: ContinualModel) -> dict[str, object]:
        """Mask usage per layer: fraction of units in the task's mask and in the cumulative mask."""
        store = _masker(model).store
        task_masks, cumulative = store.mask(task_id), store.cumulative()
        return {
            "mask_usage": {
                key: {
                    "task": float(task_masks[key].mean()),
                    "cumulative": float(cumulative[key].mean()),
                }
                for key in cumulative
            },
            "capacity": self.network_capacity(),
        }


def _scale_grad(
    parameter: torch.nn.Parameter, rate: torch.Tensor | None, rates: list[torch.Tensor]
) -> None:
    if rate is None:
        return
    if parameter.grad is not None:
        parameter.grad.mul_(rate)
    rates.append(rate.expand_as(parameter) if rate.dim() == 0 else rate)


def _masker(model: ContinualModel) -> HATMasker:
    masker = getattr(model.backbone, "masker", None)
    if masker is None:
        raise TypeError("HAT-family algorithms need a masked backbone (built with masked=True)")
    return masker
