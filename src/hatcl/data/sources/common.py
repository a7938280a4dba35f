"""Helpers shared by the source loaders: compact tensors and their normalisation statistics."""

from __future__ import annotations

import numpy as np
import torch

from hatcl.data.source import SourceData


def normalised_source(
    *,
    name: str,
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    num_classes: int,
    divisor: float = 1.0,
) -> SourceData:
    """Keep the raw inputs in their compact dtype and record the per-channel mean/std.

    The statistics are those of the training inputs divided by ``divisor`` (e.g. 255 for bytes);
    for bytes they come from histograms, so no float copy of the dataset is made.

    Args:
        name: source name.
        train_x: raw training inputs ``(N, C, ...)`` (``uint8`` images or floats).
        train_y: training labels.
        test_x: raw test inputs, same per-sample shape and dtype.
        test_y: test labels.
        num_classes: number of classes.
        divisor: raw value mapped to 1.0 before normalisation.
    """
    train = torch.from_numpy(np.array(train_x, order="C"))
    test = torch.from_numpy(np.array(test_x, order="C"))
    mean, std = _statistics(train, divisor)
    return SourceData(
        train_x=train,
        train_y=torch.as_tensor(np.asarray(train_y), dtype=torch.int64).clone(),
        test_x=test,
        test_y=torch.as_tensor(np.asarray(test_y), dtype=torch.int64).clone(),
        num_classes=num_classes,
        name=name,
        mean=mean,
        std=std,
        divisor=float(divisor),
    )


def _statistics(raw: torch.Tensor, divisor: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (unbiased) std of ``raw / divisor``, the std rounded to float32."""
    if raw.dtype == torch.uint8:
        return _byte_statistics(raw, divisor)
    scaled = raw.to(torch.float32)
    if divisor != 1.0:
        scaled.div_(divisor)
    dims = [0, *range(2, scaled.dim())]
    mean = scaled.mean(dim=dims, dtype=torch.float64)
    std = scaled.std(dim=dims).double().clamp_min(1e-8)
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def _byte_statistics(
    raw: torch.Tensor, divisor: float
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Statistics of byte inputs from per-channel histograms: no float copy of the data.

    Each byte value stands for its float32 quotient ``v / divisor``; sums over the 256 values
    weighted by their counts are exact up to float64 rounding (on Fashion-MNIST and the digits
    they equal a float32 copy's statistics at float32 precision).
    """
    values = (torch.arange(256, dtype=torch.float32) / divisor).double()
    means, stds = [], []
    for channel in range(raw.shape[1]):
        counts = torch.bincount(raw[:, channel].reshape(-1), minlength=256).double()
        total = counts.sum()
        mean = (counts * values).sum() / total
        variance = (counts * (values - mean) ** 2).sum() / (total - 1).clamp_min(1)
        std = variance.sqrt().clamp_min(1e-8).float()
        means.append(float(mean))
        stds.append(float(std))
    return tuple(means), tuple(stds)
