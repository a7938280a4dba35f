"""AdaHAT: adaptive hard attention to the task (Wang et al., ECML-PKDD 2024), docs/spec.md §4.

AdaHAT is the HAT mechanism with another adjustment rule: instead of blocking every gradient of a
used parameter, the rate ``r_l / (I + r_l)`` shrinks it by how many earlier tasks used it
(``I``, the summative mask made parameter-wise with min) and how sparse the current task's mask is
(``r_l = alpha / (epsilon + R_l)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from hatcl.algorithms.hat_family import HATFamily
from hatcl.algorithms.hat_mechanism import AdjustmentRule, LayerContext, to_weight_shape
from hatcl.algorithms.hat_options import HATOptions, options_signature, split_options
from hatcl.algorithms.registries import ADAHAT_ADJUSTMENT_MODES
from hatcl.functional.aggregation import aggregate_min, neuron_to_bias
from hatcl.functional.rates import adahat_scale, adjustment_rate
from hatcl.validation import check_number


@dataclass(frozen=True)
class AdaHATMode:
    """An ``adjustment_mode`` of AdaHAT.

    Attributes:
        summative: the importance is the parameter-wise summative mask (else the task id t).
        sparsity: ``r_l`` uses the layer's network sparsity R_l (else ``R_l = 0``).
    """

    summative: bool
    sparsity: bool


ADAHAT = AdaHATMode(summative=True, sparsity=True)
ADAHAT_NO_SUM = AdaHATMode(summative=False, sparsity=True)
ADAHAT_NO_REG = AdaHATMode(summative=True, sparsity=False)


class AdaHATRule(AdjustmentRule):
    """AdaHAT's rates ``k / (I + k)`` with ``k = r_l``; ``I`` is fixed per task.

    Args:
        mode: the adjustment mode (an :class:`AdaHATMode`).
        alpha: ``adjustment_intensity``.
        epsilon: the stabiliser of ``r_l``.
    """

    reports_rate_statistics = True

    def __init__(self, *, mode: AdaHATMode, alpha: float, epsilon: float) -> None:
        self.needs_network_sparsity = mode.sparsity
        self.mode = mode
        self.alpha = alpha
        self.epsilon = epsilon
        self._importance: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def on_task_start(self, *, task_id: int, layers: tuple[LayerContext, ...], masker) -> None:
        """Make the summative mask parameter-wise (min) once for the task."""
        summative = masker.store.summative()
        self._importance = {}
        for layer in layers:
            if self.mode.summative:
                weight = to_weight_shape(layer.layer, layer.weight, summative, aggregate_min)
                bias = neuron_to_bias(summative[layer.layer.mask_key])
            else:
                weight = bias = torch.tensor(
                    float(task_id), device=layer.weight.device, dtype=layer.weight.dtype
                )
            self._importance[layer.layer.name] = (weight, bias)

    def rates(
        self, *, task_id: int, layer: LayerContext, network_sparsity: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        sparsity = network_sparsity if (self.mode.sparsity and network_sparsity is not None) else 0
        k = adahat_scale(alpha=self.alpha, epsilon=self.epsilon, network_sparsity=sparsity)
        weight, bias = self._importance[layer.layer.name]
        bias_rate = None if layer.bias is None else adjustment_rate(bias, k=k)
        return adjustment_rate(weight, k=k), bias_rate


@options_signature(HATOptions)
class AdaHAT(HATFamily):
    """HAT whose protection of used parameters adapts to their use and to the network sparsity.

    Args:
        adjustment_intensity: alpha > 0 (presets: 1e-6).
        epsilon: epsilon > 0 in ``r_l = alpha / (epsilon + R_l)``.
        adjustment_mode: ``adahat``, ``adahat_no_sum`` or ``adahat_no_reg``.
        **options: the shared HAT-family options (:class:`~hatcl.algorithms.hat_options.HATOptions`:
            ``s_max``, ``clamp_threshold``, ``mask_sparsity_reg_factor``,
            ``mask_sparsity_reg_mode``, ``task_embedding_init_mode``, ``embedding_clamp``).
    """

    def __init__(
        self,
        *,
        adjustment_intensity: float = 1.0e-6,
        epsilon: float = 0.1,
        adjustment_mode: str = "adahat",
        **options: Any,
    ) -> None:
        (shared,) = split_options(options, (HATOptions,), owner="AdaHAT")
        alpha = check_number(
            adjustment_intensity, parameter="adjustment_intensity", low=0.0, low_inclusive=False
        )
        epsilon = check_number(epsilon, parameter="epsilon", low=0.0, low_inclusive=False)
        mode = ADAHAT_ADJUSTMENT_MODES.validate(adjustment_mode, parameter="adjustment_mode")
        super().__init__(
            rule=AdaHATRule(mode=ADAHAT_ADJUSTMENT_MODES.get(mode), alpha=alpha, epsilon=epsilon),
            **shared,
        )
        self.adjustment_intensity = alpha
        self.epsilon = epsilon
        self.adjustment_mode = mode
