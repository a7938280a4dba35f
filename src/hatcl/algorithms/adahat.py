"""AdaHAT: adaptive hard attention to the task (Wang et al., ECML-PKDD 2024), spec §4.

AdaHAT is the HAT mechanism with another adjustment rule: instead of blocking every gradient of a
used parameter, the rate ``r_l / (I + r_l)`` shrinks it by how many earlier tasks used it
(``I``, the summative mask made parameter-wise with min) and how sparse the current task's mask is
(``r_l = alpha / (epsilon + R_l)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hatcl.algorithms.hat import HAT
from hatcl.algorithms.hat_mechanism import AdjustmentRule, LayerContext, to_weight_shape
from hatcl.algorithms.registries import ADAHAT_ADJUSTMENT_MODES
from hatcl.functional.aggregation import aggregate_min, neuron_to_bias
from hatcl.functional.rates import adahat_rate, adahat_reg_scale
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
    """AdaHAT's rates ``r_l / (I + r_l)``; the parameter-wise summative mask is fixed per task.

    Args:
        mode: the adjustment mode (an :class:`AdaHATMode`).
        alpha: ``adjustment_intensity``.
        epsilon: the stabiliser of ``r_l``.
    """

    def __init__(self, *, mode: AdaHATMode, alpha: float, epsilon: float) -> None:
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
                weight = bias = torch.tensor(float(task_id), device=layer.weight.device)
            self._importance[layer.layer.name] = (weight, bias)

    def rates(
        self, *, task_id: int, layer: LayerContext, network_sparsity: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        sparsity = network_sparsity if (self.mode.sparsity and network_sparsity is not None) else 0
        r = adahat_reg_scale(alpha=self.alpha, epsilon=self.epsilon, network_sparsity=sparsity)
        weight, bias = self._importance[layer.layer.name]
        bias_rate = None if layer.bias is None else adahat_rate(bias, r=r)
        return adahat_rate(weight, r=r), bias_rate


class AdaptiveRateReporting:
    """Step metrics of the adaptive HAT family: capacity and per-layer rate statistics.

    Mixed into a :class:`HAT` subclass; reads the rates HAT kept from the last step, grouped by
    weighted layer (weight and bias together). Computed only when called, with one host sync.
    """

    def rate_statistics(self) -> dict[str, float]:
        """Per layer: mean, min and fraction below 0.5 of its rates; plus network capacity."""
        rates = list(self._last_rates)
        if not rates:
            return {}
        names, stats = [], []
        for layer in self._layers:
            parts = [rates.pop(0).reshape(-1)]
            if layer.bias is not None and rates:
                parts.append(rates.pop(0).reshape(-1))
            values = torch.cat(parts)
            names.append(layer.layer.name)
            stats.append(
                torch.stack(
                    [values.mean(), values.min(), (values < 0.5).float().mean(), values.sum()]
                )
            )
        table = torch.stack(stats).tolist()
        total = sum(row[3] for row in table)
        count = sum(r.numel() for r in self._last_rates)
        result = {"capacity": total / count}
        for name, (mean, low, below, _) in zip(names, table):
            result[f"rate_mean/{name}"] = mean
            result[f"rate_min/{name}"] = low
            result[f"rate_below_half/{name}"] = below
        return result


class AdaHAT(AdaptiveRateReporting, HAT):
    """HAT whose protection of used parameters adapts to their use and to the network sparsity.

    Args:
        adjustment_intensity: alpha > 0 (presets: 1e-6).
        epsilon: epsilon > 0 in ``r_l = alpha / (epsilon + R_l)``.
        adjustment_mode: ``adahat``, ``adahat_no_sum`` or ``adahat_no_reg``.
        s_max: the largest mask scale.
        clamp_threshold: clamp of ``s * e`` in the embedding gradient compensation.
        mask_sparsity_reg_factor: weight of the mask sparsity regulariser.
        mask_sparsity_reg_mode: ``original`` or ``cross``.
        task_embedding_init_mode: ``N01``, ``U-11``, ``U01``, ``U-10`` or ``last``.
        embedding_clamp: clamp embeddings to [-value, value] after each step (None: off).
    """

    def __init__(
        self,
        *,
        adjustment_intensity: float,
        epsilon: float = 0.1,
        adjustment_mode: str = "adahat",
        s_max: float = 400.0,
        clamp_threshold: float = 50.0,
        mask_sparsity_reg_factor: float = 0.1,
        mask_sparsity_reg_mode: str = "original",
        task_embedding_init_mode: str = "N01",
        embedding_clamp: float | None = None,
    ) -> None:
        torch.nn.Module.__init__(self)
        alpha = check_number(
            adjustment_intensity, parameter="adjustment_intensity", low=0.0, low_inclusive=False
        )
        epsilon = check_number(epsilon, parameter="epsilon", low=0.0, low_inclusive=False)
        mode = ADAHAT_ADJUSTMENT_MODES.get(
            ADAHAT_ADJUSTMENT_MODES.validate(adjustment_mode, parameter="adjustment_mode")
        )
        self.adjustment_intensity = alpha
        self.epsilon = epsilon
        self.adjustment_mode = adjustment_mode
        self._init_shared(
            s_max=s_max,
            clamp_threshold=clamp_threshold,
            mask_sparsity_reg_factor=mask_sparsity_reg_factor,
            mask_sparsity_reg_mode=mask_sparsity_reg_mode,
            task_embedding_init_mode=task_embedding_init_mode,
            embedding_clamp=embedding_clamp,
            rule=AdaHATRule(mode=mode, alpha=alpha, epsilon=epsilon),
        )

    def step_metrics(self) -> dict[str, float]:
        return self.rate_statistics()
