"""Pieces of the HAT-family mechanism: per-layer views and the injected adjustment rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from hatcl.backbones.base import WeightedLayer
from hatcl.functional.aggregation import (
    aggregate_min,
    neuron_to_bias,
    neuron_to_weight,
    neuron_to_weight_concat,
)
from hatcl.functional.rates import (
    hat_const_1_rate,
    hat_const_alpha_rate,
    hat_random_rate,
    hat_rate,
)


@dataclass(frozen=True)
class LayerContext:
    """A weighted backbone layer, its parameters and its parameter-wise cumulative mask.

    The cumulative mask (aggregated with min) only changes between tasks, so it is computed once
    at the start of each task.
    """

    layer: WeightedLayer
    weight: nn.Parameter
    bias: nn.Parameter | None
    cumulative_weight: torch.Tensor
    cumulative_bias: torch.Tensor


@dataclass(frozen=True)
class NetworkSparsity:
    """The step's network sparsity R_l of every mask key, as one detached vector.

    Attributes:
        values: ``(keys,)`` tensor, ``values[i]`` is R_l of ``keys[i]``.
        keys: the mask keys in the order of ``values``.
    """

    values: torch.Tensor
    keys: tuple[str, ...]

    def of(self, key: str) -> torch.Tensor:
        """R_l of mask key ``key`` (a 0-dim view)."""
        return self.values[self.keys.index(key)]


def adjusted_parameters(layers: tuple[LayerContext, ...]) -> list[tuple[LayerContext, bool]]:
    """Every adjusted parameter in the order of :meth:`AdjustmentRule.step_rates`.

    Per layer its weight ``(layer, False)`` then its bias ``(layer, True)`` if it has one.
    """
    order = []
    for layer in layers:
        order.append((layer, False))
        if layer.bias is not None:
            order.append((layer, True))
    return order


@dataclass(frozen=True)
class FlatLayout:
    """Every adjusted parameter (order of :func:`adjusted_parameters`) as one flat vector.

    Lets a rule hold its per-task parameter-wise quantities in one buffer and compute a step's
    rates of all layers in a few elementwise ops, the per-layer scalar (from R_l) spread over
    each parameter's entries.

    Attributes:
        shapes: each parameter's shape.
        key_index: the index of each parameter's mask key in ``keys``.
        numels: each parameter's number of entries.
    """

    shapes: tuple[torch.Size, ...]
    key_index: tuple[int, ...]
    numels: tuple[int, ...]

    @classmethod
    def of(cls, layers: tuple[LayerContext, ...], keys: tuple[str, ...]) -> FlatLayout:
        """The layout of ``layers``' adjusted parameters; ``keys``: the R_l vector's order."""
        order = adjusted_parameters(layers)
        shapes = tuple((layer.bias if bias else layer.weight).shape for layer, bias in order)
        return cls(
            shapes=shapes,
            key_index=tuple(keys.index(layer.layer.mask_key) for layer, _ in order),
            numels=tuple(int(torch.Size(shape).numel()) for shape in shapes),
        )

    def flatten(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """Concatenate one tensor per parameter (each broadcast to its parameter's shape)."""
        return torch.cat([t.expand(shape).reshape(-1) for t, shape in zip(tensors, self.shapes)])

    def per_entry(self, per_key: torch.Tensor) -> torch.Tensor:
        """Spread a ``(keys,)`` vector over every entry of every parameter (one ``cat`` of
        expanded views, no index tensor held)."""
        values = per_key.unbind()
        return torch.cat([values[i].expand(n) for i, n in zip(self.key_index, self.numels)])

    def unflatten(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Views of ``flat``, one per parameter, in each parameter's shape."""
        return [part.view(shape) for part, shape in zip(flat.split(self.numels), self.shapes)]


def build_layer_contexts(
    layers: list[tuple[WeightedLayer, nn.Module]], cumulative: dict[str, torch.Tensor]
) -> tuple[LayerContext, ...]:
    """Describe every weighted layer with its parameter-wise cumulative mask."""
    return tuple(
        LayerContext(
            layer=layer,
            weight=module.weight,
            bias=getattr(module, "bias", None),
            cumulative_weight=to_weight_shape(layer, module.weight, cumulative, aggregate_min),
            cumulative_bias=neuron_to_bias(cumulative[layer.mask_key]),
        )
        for layer, module in layers
    )


def to_weight_shape(
    layer: WeightedLayer, weight: torch.Tensor, unit_values: dict[str, torch.Tensor], aggregate
) -> torch.Tensor:
    """Make neuron-wise ``unit_values`` parameter-wise for ``layer``'s weight (docs/spec.md §1)."""
    if layer.unit_dim == 1:  # an embedding table (tokens, units): each entry is its unit's
        return unit_values[layer.mask_key][None, :].expand(weight.shape).contiguous()
    if layer.input_segments:  # a concatenated input: each column from its own part's units
        parts = [(unit_values[k] if k else None, n, r) for k, n, r in layer.input_segments]
        return neuron_to_weight_concat(
            unit_values=unit_values[layer.mask_key],
            input_parts=parts,
            weight_shape=weight.shape,
            aggregate=aggregate,
        )
    inputs = unit_values[layer.input_mask_key] if layer.input_mask_key is not None else None
    return neuron_to_weight(
        unit_values=unit_values[layer.mask_key],
        input_values=inputs,
        weight_shape=weight.shape,
        aggregate=aggregate,
        input_repeat=layer.input_repeat,
    )


class AdjustmentRule:
    """How much of each backbone gradient entry a step keeps: its adjustment rate.

    HAT, AdaHAT and FG-AdaHAT share the mechanism and differ only in this rule.

    Attributes:
        reports_rate_statistics: log per-layer rate statistics (mean, min, fraction below
            0.5) besides the network capacity.
        needs_network_sparsity: :meth:`rates` reads the step's per-layer network sparsity R_l
            (else the mechanism does not compute it).
    """

    reports_rate_statistics: bool = False
    needs_network_sparsity: bool = False

    def on_task_start(self, *, task_id: int, layers: tuple[LayerContext, ...], masker) -> None:
        """Precompute what stays fixed during the task (on the model's device and dtype)."""

    def rates(
        self, *, task_id: int, layer: LayerContext, network_sparsity: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Weight and bias rates of ``layer`` for this step."""
        raise NotImplementedError

    def step_rates(
        self,
        *,
        task_id: int,
        layers: tuple[LayerContext, ...],
        network_sparsity: NetworkSparsity | None,
    ) -> list[torch.Tensor | None]:
        """The rate of every parameter of :func:`adjusted_parameters` (``None``: unchanged).

        This default asks :meth:`rates` layer by layer; the built-in rules override it to
        compute every layer's rates at once from per-task buffers.
        """
        result: list[torch.Tensor | None] = []
        for layer in layers:
            weight, bias = self.rates(
                task_id=task_id,
                layer=layer,
                network_sparsity=(
                    None if network_sparsity is None else network_sparsity.of(layer.layer.mask_key)
                ),
            )
            result.append(weight)
            if layer.bias is not None:
                result.append(bias)
        return result


@dataclass(frozen=True)
class HATMode:
    """An ``adjustment_mode`` of HAT: its rate function and whether a step draws anew.

    Attributes:
        rate: ``rate(P, alpha=...)`` from :mod:`hatcl.functional.rates`.
        fixed_per_task: the rate depends only on P (fixed during a task), so it is computed
            once at the task start; otherwise (``hat_random``) every step draws anew.
    """

    rate: Callable[..., torch.Tensor]
    fixed_per_task: bool = True


HAT = HATMode(rate=hat_rate)
HAT_RANDOM = HATMode(rate=hat_random_rate, fixed_per_task=False)
HAT_CONST_ALPHA = HATMode(rate=hat_const_alpha_rate)
HAT_CONST_1 = HATMode(rate=hat_const_1_rate)


class HATRule(AdjustmentRule):
    """HAT's rates from the cumulative mask P: ``hat``, ``hat_random``, ``hat_const_*``.

    Args:
        mode: a :class:`HATMode` (an ``HAT_ADJUSTMENT_MODES`` entry).
        alpha: the constant of ``hat_const_alpha``.
    """

    def __init__(self, *, mode: HATMode, alpha: float | None) -> None:
        self.mode = mode
        self.alpha = alpha
        self._fixed: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self._fixed_list: list[torch.Tensor | None] = []

    def on_task_start(self, *, task_id: int, layers: tuple[LayerContext, ...], masker) -> None:
        """Compute the task's rates once when they depend only on P."""
        self._fixed = (
            {layer.layer.name: self._compute(layer) for layer in layers}
            if self.mode.fixed_per_task
            else {}
        )
        self._fixed_list = (
            super().step_rates(task_id=task_id, layers=layers, network_sparsity=None)
            if self.mode.fixed_per_task
            else []
        )

    def step_rates(
        self,
        *,
        task_id: int,
        layers: tuple[LayerContext, ...],
        network_sparsity: NetworkSparsity | None,
    ) -> list[torch.Tensor | None]:
        """The task's fixed rates (``hat_random``: drawn anew, layer by layer)."""
        if self.mode.fixed_per_task:
            return self._fixed_list
        return super().step_rates(task_id=task_id, layers=layers, network_sparsity=None)

    def rates(
        self, *, task_id: int, layer: LayerContext, network_sparsity: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        fixed = self._fixed.get(layer.layer.name)
        return fixed if fixed is not None else self._compute(layer)

    def _compute(self, layer: LayerContext) -> tuple[torch.Tensor, torch.Tensor | None]:
        weight_rate = self.mode.rate(layer.cumulative_weight, alpha=self.alpha)
        bias_rate = (
            None
            if layer.bias is None
            else self.mode.rate(layer.cumulative_bias, alpha=self.alpha)
        )
        return weight_rate, bias_rate
