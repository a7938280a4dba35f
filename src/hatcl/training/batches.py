"""Mini-batches from tensors or lazy rows held in memory (no per-sample Python work, no workers).

``x``, ``y`` and ``task_ids`` may be tensors or :class:`hatcl.data.rows.LazyRows` (a task's
planned rows): either is indexed once per batch with a slice or an index tensor, so lazy rows
build each batch (gather, normalise, transform) only when it is drawn.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator

import torch


class TensorBatches:
    """An iterable of ``(x, y)`` batches (``(x, y, task_ids)`` with task ids) from memory.

    Under distributed training every process iterates only its shard: samples ``rank``,
    ``rank + world_size``, ... of the (shuffled) order. Training batches use ``equal_shards`` so
    that every process takes the same number of steps (the order is padded by repeating its
    first samples, as PyTorch's ``DistributedSampler`` does); evaluation shards are exact and
    their counts are summed across processes by the caller.

    Args:
        x: inputs, first dim = samples (a tensor or lazy rows).
        y: labels (a tensor or lazy rows).
        batch_size: samples per batch (the last batch may be smaller).
        shuffle: reshuffle at every iteration with ``generator``.
        generator: the RNG of the shuffles (seeded by the runner for reproducibility; every
            process must use the same seed so that the shards partition one order).
        task_ids: optional per-sample task ids, sliced and shuffled along with ``x`` and ``y``.
        equal_shards: pad the order so that every shard has the same length.

    ``pin_memory`` (default False, set by the task loop from the trainer's device with
    :func:`pins_host_memory`): each batch is copied into page-locked host memory so that
    Lightning's move to a CUDA device (``non_blocking=True`` there) overlaps with the step.
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
        equal_shards: bool = False,
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
        self.equal_shards = equal_shards
        self.pin_memory = False
        self.rank = 0
        self.world_size = 1
        self.epoch_generator_state: torch.Tensor | None = None
        self._resume_state: torch.Tensor | None = None

    def resume_epoch(self, *, generator_state: torch.Tensor) -> None:
        """Make the next iteration repeat an epoch's order: the shuffle generator starts from
        ``generator_state`` (its state when that epoch started; empty: left as it is)."""
        self._resume_state = generator_state

    def set_shard(self, *, rank: int, world_size: int) -> None:
        """Iterate only shard ``rank`` of ``world_size`` from now on."""
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"shard rank {rank} is not in 0..{world_size - 1}")
        self.rank, self.world_size = rank, world_size

    def _shard_size(self) -> int:
        samples = len(self.x)
        if self.world_size == 1:
            return samples
        if self.equal_shards:
            return -(-samples // self.world_size)
        return len(range(self.rank, samples, self.world_size))

    def __len__(self) -> int:
        return -(-self._shard_size() // self.batch_size)

    def _order(self) -> torch.Tensor | None:
        """Sample indices of this iteration's shard (None: all samples in stored order)."""
        if self.shuffle:
            if self.generator is not None:
                self.epoch_generator_state = self.generator.get_state()
            order = torch.randperm(len(self.x), generator=self.generator)
        elif self.world_size > 1:
            order = torch.arange(len(self.x))
        else:
            return None
        if self.world_size > 1:
            if self.equal_shards:
                total = self._shard_size() * self.world_size
                order = order.repeat(-(-total // len(order)))[:total]
            order = order[self.rank :: self.world_size]
        return order

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        if not self.pin_memory:
            yield from self._batches()
            return
        for batch in self._batches():
            yield tuple(t.pin_memory() for t in batch)

    def _batches(self) -> Iterator[tuple[torch.Tensor, ...]]:
        tensors = (self.x, self.y) if self.task_ids is None else (self.x, self.y, self.task_ids)
        state, self._resume_state = self._resume_state, None
        if state is not None and state.numel() and self.generator is not None:
            self.generator.set_state(state)
        order = self._order()
        if order is None:
            for start in range(0, len(tensors[0]), self.batch_size):
                yield tuple(t[start : start + self.batch_size] for t in tensors)
            return
        # gathered batch by batch: no shuffled copy of the whole split is ever made
        for start in range(0, len(order), self.batch_size):
            chosen = order[start : start + self.batch_size]
            yield tuple(t[chosen] for t in tensors)


def pins_host_memory(device: torch.device) -> bool:
    """Whether batches for a model on ``device`` go through pinned host memory.

    Only a CUDA device gains from it (the host-to-device copy becomes asynchronous); on the
    CPU a batch is used where it is, with no extra copy.
    """
    return device.type == "cuda"


def pin_batches(device: torch.device, loaders) -> None:
    """Set ``pin_memory`` of every :class:`TensorBatches` in ``loaders`` for ``device``."""
    for loader in loaders:
        if isinstance(loader, TensorBatches):
            loader.pin_memory = pins_host_memory(device)


def release_freed_memory() -> bool:
    """Give the heap memory freed by batch buffers back to the operating system (glibc only).

    Batches of different sizes (training, validation and the large test batches) are
    allocated and freed over and over; glibc keeps the freed space in its heap, fragmented, so a
    process's resident memory creeps up task after task although nothing is held. Called once
    per task (after testing), ``malloc_trim(0)`` returns those pages (a few ms). Returns whether
    it could be called (False off glibc).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim(0)
    return True
