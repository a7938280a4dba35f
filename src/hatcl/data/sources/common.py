"""Helpers shared by the source loaders: normalisation and checks."""

from __future__ import annotations

import numpy as np
import torch

from hatcl.data.base import SourceData


def normalised_source(
    *,
    name: str,
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    num_classes: int,
) -> SourceData:
    """Normalise raw inputs per channel with the training set's mean/std into a ``SourceData``.

    Args:
        name: source name.
        train_x: training inputs ``(N, C, ...)``, already scaled (e.g. to [0, 1]).
        train_y: training labels.
        test_x: test inputs, same per-sample shape.
        test_y: test labels.
        num_classes: number of classes.
    """
    train = torch.as_tensor(np.ascontiguousarray(train_x), dtype=torch.float32)
    test = torch.as_tensor(np.ascontiguousarray(test_x), dtype=torch.float32)
    dims = [0, *range(2, train.dim())]
    mean = train.mean(dim=dims, dtype=torch.float64)
    std = train.std(dim=dims).double().clamp_min(1e-8)
    shape = (1, -1) + (1,) * (train.dim() - 2)
    mean_f = mean.float().view(shape)
    std_f = std.float().view(shape)
    return SourceData(
        train_x=(train - mean_f) / std_f,
        train_y=torch.as_tensor(np.asarray(train_y), dtype=torch.int64).clone(),
        test_x=(test - mean_f) / std_f,
        test_y=torch.as_tensor(np.asarray(test_y), dtype=torch.int64).clone(),
        num_classes=num_classes,
        name=name,
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
    )
