"""Neuron-wise to parameter-wise broadcast of unit values (masks, importances)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "aggregate_max",
    "aggregate_mean",
    "aggregate_min",
    "expand_input_units",
    "neuron_to_bias",
    "neuron_to_weight",
    "neuron_to_weight_concat",
]


def aggregate_min(a: Tensor, b: Tensor) -> Tensor:
    """Return the elementwise minimum of ``a`` and ``b`` (broadcasting)."""
    return torch.minimum(a, b)


def aggregate_max(a: Tensor, b: Tensor) -> Tensor:
    """Return the elementwise maximum of ``a`` and ``b`` (broadcasting)."""
    return torch.maximum(a, b)


def aggregate_mean(a: Tensor, b: Tensor) -> Tensor:
    """Return the elementwise mean ``(a + b) / 2`` (broadcasting)."""
    return (a + b) / 2


def expand_input_units(values: Tensor, *, repeat: int = 1) -> Tensor:
    """Expand per-channel values to the input features of a layer fed through a flatten.

    A linear layer fed by a flattened ``(C, H, W)`` conv output sees input feature ``j`` from
    channel ``j // (H * W)`` (torch's flatten order), so the per-feature values are
    ``values.repeat_interleave(H * W)``. With ``repeat == 1`` the values are returned unchanged.

    Args:
        values: 1-D per-unit (per-channel) values of the preceding layer.
        repeat: number of flattened positions per channel (``H * W``), at least 1.

    Returns:
        1-D tensor of length ``len(values) * repeat``.

    Raises:
        ValueError: if ``values`` is not 1-D or ``repeat < 1``.
    """
    if values.dim() != 1:
        raise ValueError(f"values must be 1-D, got shape {tuple(values.shape)}")
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat!r}")
    if repeat == 1:
        return values
    return values.repeat_interleave(repeat)


def _validate_units(unit_values: Tensor, weight_shape: tuple[int, ...]) -> None:
    if len(weight_shape) < 2:
        raise ValueError(
            f"weight_shape must have at least 2 dims (out, in, *kernel), got {weight_shape}"
        )
    if unit_values.dim() != 1:
        raise ValueError(f"unit_values must be 1-D (out,), got shape {tuple(unit_values.shape)}")
    if unit_values.shape[0] != weight_shape[0]:
        raise ValueError(
            f"unit_values has {unit_values.shape[0]} units but weight_shape {weight_shape} "
            f"has {weight_shape[0]} output units"
        )


def neuron_to_weight(
    *,
    unit_values: Tensor,
    input_values: Tensor | None,
    weight_shape: torch.Size | tuple[int, ...],
    aggregate: Callable[[Tensor, Tensor], Tensor],
    input_repeat: int = 1,
) -> Tensor:
    """Broadcast neuron-wise values to a weight's shape.

    Entry ``(i, j, *kernel)`` is ``aggregate(unit_values[i], expanded_input_values[j])``, constant
    over the kernel dims, where ``expanded_input_values = expand_input_units(input_values,
    repeat=input_repeat)``. For the first layer (``input_values is None``) the entry is
    ``unit_values[i]``: its input is always on.

    Args:
        unit_values: 1-D values of this layer's output units, shape ``(out,)``.
        input_values: 1-D values of the preceding layer's units, or ``None`` for the first layer.
        weight_shape: the weight's shape ``(out, in, *kernel)``.
        aggregate: elementwise binary function, e.g. :func:`aggregate_min`.
        input_repeat: flattened positions per preceding channel (conv -> linear), else 1.

    Returns:
        A new contiguous tensor of ``weight_shape``.

    Raises:
        ValueError: if the sizes do not match (the message names both sizes).
    """
    shape = tuple(int(d) for d in weight_shape)
    _validate_units(unit_values, shape)
    kernel_ones = (1,) * (len(shape) - 2)
    if input_values is None:
        table = unit_values.reshape(shape[0], 1, *kernel_ones)
        return table.expand(shape).contiguous()
    expanded = expand_input_units(input_values, repeat=input_repeat)
    if expanded.shape[0] != shape[1]:
        raise ValueError(
            f"input_values expand to {expanded.shape[0]} input units "
            f"({input_values.shape[0]} units x input_repeat {input_repeat}) but weight_shape "
            f"{shape} has {shape[1]} input units"
        )
    table = aggregate(unit_values[:, None], expanded[None, :])
    return table.reshape(shape[0], shape[1], *kernel_ones).expand(shape).contiguous()


def neuron_to_weight_concat(
    *,
    unit_values: Tensor,
    input_parts: Sequence[tuple[Tensor | None, int, int]],
    weight_shape: torch.Size | tuple[int, ...],
    aggregate: Callable[[Tensor, Tensor], Tensor],
) -> Tensor:
    """:func:`neuron_to_weight` for a layer whose inputs are a concatenation of several parts.

    The input features are the parts' features side by side, in order (``torch.cat`` along the
    feature or channel dim, DenseNet); part ``p`` contributes ``units_p * repeat_p`` columns.
    A column of a part with values gets ``aggregate(unit_values[i], part_value)``; a column of
    an always-on part (``None``, e.g. the raw input) gets ``unit_values[i]``, as a first layer's.

    Args:
        unit_values: 1-D values of this layer's output units, shape ``(out,)``.
        input_parts: per part, ``(values or None, units, repeat)``.
        weight_shape: the weight's shape ``(out, in, *kernel)``.
        aggregate: elementwise binary function, e.g. :func:`aggregate_min`.

    Returns:
        A new contiguous tensor of ``weight_shape``.

    Raises:
        ValueError: if a part's values do not have its unit count, or the parts' features do
            not add up to the weight's inputs.
    """
    shape = tuple(int(d) for d in weight_shape)
    _validate_units(unit_values, shape)
    columns = []
    for values, units, repeat in input_parts:
        if values is None:
            columns.append(unit_values[:, None].expand(shape[0], units * repeat))
            continue
        if values.dim() != 1 or values.shape[0] != units:
            raise ValueError(
                f"an input part has values of shape {tuple(values.shape)}, expected ({units},)"
            )
        expanded = expand_input_units(values, repeat=repeat)
        columns.append(aggregate(unit_values[:, None], expanded[None, :]))
    table = torch.cat(columns, dim=1)
    if table.shape[1] != shape[1]:
        raise ValueError(
            f"input parts {[(units, repeat) for _, units, repeat in input_parts]} give "
            f"{table.shape[1]} input features but weight_shape {shape} has {shape[1]}"
        )
    kernel_ones = (1,) * (len(shape) - 2)
    return table.reshape(shape[0], shape[1], *kernel_ones).expand(shape).contiguous()


def neuron_to_bias(unit_values: Tensor) -> Tensor:
    """Return the bias-wise values: a bias entry ``i`` gets ``unit_values[i]``.

    Args:
        unit_values: 1-D values of the layer's output units.

    Returns:
        ``unit_values`` itself (no copy); callers must not modify it in place.

    Raises:
        ValueError: if ``unit_values`` is not 1-D.
    """
    if unit_values.dim() != 1:
        raise ValueError(f"unit_values must be 1-D (out,), got shape {tuple(unit_values.shape)}")
    return unit_values
