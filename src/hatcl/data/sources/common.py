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

    The statistics are those of the training inputs divided by ``divisor`` (e.g. 255 for bytes),
    computed in float32 like a normalised float copy would be; the copy is temporary.

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
    """Per-channel mean (float64 accumulation) and std (float32) of ``raw / divisor``."""
    scaled = raw.to(torch.float32)
    if divisor != 1.0:
        scaled.div_(divisor)
    dims = [0, *range(2, scaled.dim())]
    mean = scaled.mean(dim=dims, dtype=torch.float64)
    std = scaled.std(dim=dims).double().clamp_min(1e-8)
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)
