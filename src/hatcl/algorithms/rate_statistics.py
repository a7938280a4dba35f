"""Summaries of a step's adjustment rates: network capacity and per-layer statistics."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def network_capacity(rates: Sequence[torch.Tensor]) -> float | None:
    """Mean adjustment rate over every backbone weight and bias entry (``None``: no rates)."""
    if not rates:
        return None
    total = sum(rate.sum() for rate in rates)
    count = sum(rate.numel() for rate in rates)
    return float(total) / count


def rate_statistics(
    layer_rates: Sequence[tuple[str, Sequence[torch.Tensor]]],
) -> dict[str, float]:
    """Per layer: mean, min and fraction below 0.5 of its rates; plus network capacity.

    Args:
        layer_rates: ``(layer name, [weight rate, bias rate?])`` in forward order, each rate
            expanded to its parameter's shape. One host sync for the whole table.
    """
    if not layer_rates:
        return {}
    stats = []
    for _, rates in layer_rates:
        values = torch.cat([rate.reshape(-1) for rate in rates])
        stats.append(
            torch.stack([values.mean(), values.min(), (values < 0.5).float().mean(), values.sum()])
        )
    table = torch.stack(stats).tolist()
    total = sum(row[3] for row in table)
    count = sum(rate.numel() for _, rates in layer_rates for rate in rates)
    result = {"capacity": total / count}
    for (name, _), (mean, low, below, _) in zip(layer_rates, table):
        result[f"rate_mean/{name}"] = mean
        result[f"rate_min/{name}"] = low
        result[f"rate_below_half/{name}"] = below
    return result
