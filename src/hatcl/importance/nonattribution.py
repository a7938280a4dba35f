"""The 13 importance types that need no attribution method (docs/spec.md §6): weight, gradient,
activation and CBP measures.

Each is a product (or quotient) of a few per-unit factors built from the shared reductions of
:mod:`hatcl.functional.reductions`:

- ``fan_in(f(W_l))``: sum over every dim but 0 of this layer's weight (or its gradient);
- ``fan_out(f(W_next))``: sum over every dim but 1 of the weights fed by this layer's units;
- ``bam(h_l)``: the mean of ``|h_l|`` over batch and spatial dims of the step's activation.

Several weighted layers can share one mask key (a ResNet shortcut conv and the block's last conv
both produce the block's output units). Then ``fan_in`` of the key is the **sum** over every layer
producing it, and ``fan_out`` the sum over every layer consuming it. ``W_next`` of the key no
backbone layer consumes (the last one) is the current task's head weight. A consumer fed through a
flatten (``input_repeat > 1``) has ``units x repeat`` input features in flatten order (channel
major); its fan-out is summed over each channel's positions. A consumer reading a concatenation
of several keys' units (DenseNet) feeds each key from its own columns.

Gradients are the ``.grad`` of the weights as the step applied them (after adjustment); a missing
gradient counts as zeros.
"""

from __future__ import annotations

import functools
import operator
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hatcl.functional.reductions import batch_abs_mean, fan_in, fan_out
from hatcl.importance.base import ImportanceContext, ImportanceMeasure

_EPS = 1e-12
"""Floor of a denominator fan-in (CBP types): keeps a dead unit's importance finite."""


def _weight(parameter: Tensor) -> Tensor:
    return parameter.detach()


def _gradient(parameter: Tensor) -> Tensor:
    grad = parameter.grad
    return torch.zeros_like(parameter) if grad is None else grad.detach()


_SOURCES: dict[str, Callable[[Tensor], Tensor]] = {"weight": _weight, "grad": _gradient}
_TRANSFORMS: dict[str, Callable[[Tensor], Tensor]] = {"abs": torch.abs, "square": torch.square}


@dataclass(frozen=True)
class _Topology:
    """Per mask key: its unit count, the weights producing it (each with the dim of its units:
    0, or 1 for an embedding table) and the weights it feeds (each with the input features it
    feeds: all, or its part of a concatenated input)."""

    units: dict[str, int]
    producers: dict[str, list[tuple[Tensor, int]]]
    consumers: dict[str, list[tuple[Tensor, slice]]]


@dataclass(frozen=True)
class _CachedTopology:
    """A model's topology for one task and the (module, weight) pairs it was read from.

    Valid while the task and its head module are the same and no layer's weight was replaced
    (optimizers and ``load_state_dict`` update weights in place; backbone modules themselves
    are fixed once the model is built).
    """

    task_id: int
    head: nn.Module
    topology: _Topology
    sources: tuple[tuple[nn.Module, Tensor], ...]

    def valid_for(self, task_id: int, head: nn.Module) -> bool:
        return (
            task_id == self.task_id
            and head is self.head
            and all(m.weight is w for m, w in self.sources)
        )


#: Per model (weakly held): its last topology. Walking the backbone's layers every step costs
#: about as much as the reductions themselves on the reference MLP.
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _topology(ctx: ImportanceContext) -> _Topology:
    """The model's topology for the task, re-read only when a layer's weight was replaced."""
    head = ctx.model.heads.head(ctx.task_id)
    cached = _CACHE.get(ctx.model)
    if cached is not None and cached.valid_for(ctx.task_id, head):
        return cached.topology
    topology, sources = _read_topology(ctx)
    _CACHE[ctx.model] = _CachedTopology(
        task_id=ctx.task_id, head=head, topology=topology, sources=sources
    )
    return topology


def _read_topology(ctx: ImportanceContext) -> tuple[_Topology, tuple]:
    layers = ctx.model.backbone.layer_modules()
    units = ctx.model.backbone.unit_counts()
    producers: dict[str, list[tuple[Tensor, int]]] = {key: [] for key in units}
    consumers: dict[str, list[tuple[Tensor, slice]]] = {key: [] for key in units}
    for layer, module in layers:
        producers[layer.mask_key].append((module.weight, layer.unit_dim))
        if layer.input_mask_key is not None:
            consumers[layer.input_mask_key].append((module.weight, slice(None)))
        start = 0
        for key, count, repeat in layer.input_segments:  # a concatenated input: its columns
            if key is not None:
                consumers[key].append((module.weight, slice(start, start + count * repeat)))
            start += count * repeat
    head_module = ctx.model.heads.head(ctx.task_id)
    for feeds in consumers.values():
        if not feeds:
            feeds.append((head_module.weight, slice(None)))
    sources = tuple((m, m.weight) for m in [*(module for _, module in layers), head_module])
    return _Topology(units=units, producers=producers, consumers=consumers), sources


@dataclass(frozen=True)
class FanIn:
    """``fan_in(transform(source(W_l)))`` summed over the layers producing the key."""

    source: str = "weight"
    transform: str = "abs"

    def __call__(self, ctx: ImportanceContext, topology: _Topology, key: str) -> Tensor:
        read, apply = _SOURCES[self.source], _TRANSFORMS[self.transform]
        return _total(
            fan_in(apply(read(w)).movedim(dim, 0)) for w, dim in topology.producers[key]
        )


@dataclass(frozen=True)
class FanOut:
    """``fan_out(transform(source(W_next)))`` summed over the key's consumers (or the head)."""

    source: str = "weight"
    transform: str = "abs"

    def __call__(self, ctx: ImportanceContext, topology: _Topology, key: str) -> Tensor:
        read, apply = _SOURCES[self.source], _TRANSFORMS[self.transform]
        units = topology.units[key]
        return _total(
            _per_unit(fan_out(apply(read(w)))[columns], units)
            for w, columns in topology.consumers[key]
        )


@dataclass(frozen=True)
class ActivationAbs:
    """``bam(h_l)``: mean of ``|h_l|`` over the batch and spatial dims."""

    source: str = "activation"

    def __call__(self, ctx: ImportanceContext, topology: _Topology, key: str) -> Tensor:
        return batch_abs_mean(ctx.output.backbone.activations[key].detach())


def _total(terms) -> Tensor:
    """The sum of the terms, starting from the first (``sum()`` would add them to 0 first)."""
    return functools.reduce(operator.add, terms)


def _per_unit(per_feature: Tensor, units: int) -> Tensor:
    """Fold flatten-ordered input features (``units x repeat``) to one value per unit."""
    if per_feature.numel() == units:
        return per_feature
    return per_feature.reshape(units, -1).sum(dim=1)


@dataclass(frozen=True)
class FactorProduct:
    """``prod(numerator) / prod(denominator)`` of per-unit factors, for every mask key."""

    numerator: tuple
    denominator: tuple = ()

    @torch.no_grad()
    def __call__(self, ctx: ImportanceContext) -> dict[str, Tensor]:
        topology = _topology(ctx)
        result: dict[str, Tensor] = {}
        for key in topology.units:
            value = None
            for factor in self.numerator:
                term = factor(ctx, topology, key)
                value = term if value is None else value * term
            for factor in self.denominator:
                term = factor(ctx, topology, key).clamp_min(_EPS)
                value = term.reciprocal() if value is None else value / term
            result[key] = value
        return result


def _measure(*numerator, denominator: tuple = ()) -> ImportanceMeasure:
    return ImportanceMeasure(
        compute=FactorProduct(numerator=tuple(numerator), denominator=denominator)
    )


_IN_W, _OUT_W = FanIn(), FanOut()
_IN_G, _OUT_G = FanIn(source="grad"), FanOut(source="grad")
_IN_G2 = FanIn(source="grad", transform="square")
_OUT_G2 = FanOut(source="grad", transform="square")
_ACT = ActivationAbs()

INPUT_WEIGHT_ABS_SUM = _measure(_IN_W)
OUTPUT_WEIGHT_ABS_SUM = _measure(_OUT_W)
INPUT_WEIGHT_GRADIENT_ABS_SUM = _measure(_IN_G)
OUTPUT_WEIGHT_GRADIENT_ABS_SUM = _measure(_OUT_G)
ACTIVATION_ABS = _measure(_ACT)
INPUT_WEIGHT_ABS_SUM_X_ACTIVATION_ABS = _measure(_IN_W, _ACT)
OUTPUT_WEIGHT_ABS_SUM_X_ACTIVATION_ABS = _measure(_OUT_W, _ACT)
INPUT_WEIGHT_GRADIENT_SQUARE_SUM = _measure(_IN_G2)
OUTPUT_WEIGHT_GRADIENT_SQUARE_SUM = _measure(_OUT_G2)
INPUT_WEIGHT_GRADIENT_SQUARE_SUM_X_ACTIVATION_ABS = _measure(_IN_G2, _ACT)
OUTPUT_WEIGHT_GRADIENT_SQUARE_SUM_X_ACTIVATION_ABS = _measure(_OUT_G2, _ACT)
CBP_ADAPTATION = _measure(denominator=(_IN_W,))
CBP_ADAPTIVE_CONTRIBUTION = _measure(_OUT_W, _ACT, denominator=(_IN_W,))
