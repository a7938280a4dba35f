"""Mini-batches sliced from tensors held in memory (no per-sample Python work, no workers)."""

from __future__ import annotations

from collections.abc import Iterator

import torch


class TensorBatches:
    """An iterable of ``(x, y)`` batches sliced from in-memory tensors.

    Args:
        x: inputs, first dim = samples.
        y: labels.
        batch_size: samples per batch (the last batch may be smaller).
        shuffle: reshuffle at every iteration with ``generator``.
        generator: the RNG of the shuffles (seeded by the runner for reproducibility).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"inputs have {len(x)} samples but labels {len(y)}")
        if len(x) == 0:
            raise ValueError("cannot batch an empty split")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.shuffle:
            order = torch.randperm(len(self.x), generator=self.generator)
            x, y = self.x[order], self.y[order]
        else:
            x, y = self.x, self.y
        for start in range(0, len(x), self.batch_size):
            yield x[start : start + self.batch_size], y[start : start + self.batch_size]
