"""Mini-batches sliced from tensors held in memory (no per-sample Python work, no workers)."""

from __future__ import annotations

from collections.abc import Iterator

import torch


class TensorBatches:
    """An iterable of ``(x, y)`` batches (``(x, y, task_ids)`` with task ids) from memory.

    Args:
        x: inputs, first dim = samples.
        y: labels.
        batch_size: samples per batch (the last batch may be smaller).
        shuffle: reshuffle at every iteration with ``generator``.
        generator: the RNG of the shuffles (seeded by the runner for reproducibility).
        task_ids: optional per-sample task ids, sliced and shuffled along with ``x`` and ``y``.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        task_ids: torch.Tensor | None = None,
    ) -> None:
        if task_ids is not None and len(task_ids) != len(y):
            raise ValueError(f"task_ids has {len(task_ids)} entries but labels {len(y)}")
        if len(x) != len(y):
            raise ValueError(f"inputs have {len(x)} samples but labels {len(y)}")
        if len(x) == 0:
            raise ValueError("cannot batch an empty split")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.task_ids = task_ids

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        tensors = (self.x, self.y) if self.task_ids is None else (self.x, self.y, self.task_ids)
        if self.shuffle:
            order = torch.randperm(len(self.x), generator=self.generator)
            tensors = tuple(t[order] for t in tensors)
        for start in range(0, len(self.x), self.batch_size):
            yield tuple(t[start : start + self.batch_size] for t in tensors)
