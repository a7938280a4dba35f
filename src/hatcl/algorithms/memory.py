"""The rehearsal memory: a fixed-capacity reservoir of past training samples, kept in buffers."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hatcl.functional.replay import draw_indices, last_writers, reservoir_slots, write_slots
from hatcl.generator import CheckpointedGenerator
from hatcl.seeding import derive_seed
from hatcl.validation import check_int

_SLOTS = ("inputs", "labels", "task_ids", "logits")


@dataclass(frozen=True)
class MemoryBatch:
    """Samples drawn from the memory: inputs, labels, 1-based task ids, stored logits or None."""

    inputs: torch.Tensor
    labels: torch.Tensor
    task_ids: torch.Tensor
    logits: torch.Tensor | None


class ReservoirMemory(nn.Module):
    """M slots filled by reservoir sampling over the whole stream of training samples.

    Every sample seen is in the memory with probability ``min(1, M / n)`` after ``n`` samples.
    A slot keeps the sample's input (as the model received it, before augmentation), its label
    in the head's labelling, its task id and, with ``store_logits``, its logits at insertion
    (padded with ``-inf`` beyond the classes known then). Everything lives in buffers on the
    model's device, created at the first insertion; draws come from a checkpointed generator.
    Memory is O(M), whatever the number of tasks.

    Under DDP every process keeps its own reservoir of M slots over its own shard of the batches
    (M per process, M x world size in all): the memory's buffers are rank-local
    (``rank_local_state``: the DDP strategy neither broadcasts nor compares them) and the draws
    of a process of rank r > 0 come from a seed derived from the run's and r. Checkpoints hold
    rank 0's memory; a resumed DDP run starts every process from it, ranks r > 0 drawing from
    another seed derived from the run's and r (resume is byte-identical in one process only).

    Args:
        capacity: M, the number of slots.
        store_logits: also keep each sample's logits (DER, DER++).
    """

    rank_local_state = True

    def __init__(self, *, capacity: int, store_logits: bool = False) -> None:
        super().__init__()
        self.capacity = check_int(capacity, parameter="buffer_size", low=1)
        self.store_logits = store_logits
        self.generator = CheckpointedGenerator()
        self._rank_bound = False
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))
        for name in _SLOTS:
            self.register_buffer(name, None)

    def fill(self) -> torch.Tensor:
        """0-dim int64: the number of occupied slots, ``min(seen, M)``."""
        return self.seen.clamp(max=self.capacity)

    def insert(
        self,
        *,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        task_ids: torch.Tensor,
        logits: torch.Tensor | None = None,
        keep: torch.Tensor | None = None,
    ) -> None:
        """Offer a batch to the reservoir (no host synchronisation).

        ``keep``: a 0-dim bool (the step's ``gradients_finite`` under a grad scaler): ``False``
        leaves the slots and the count of samples seen as they were (a skipped step stores
        nothing); its random draws are still consumed, as its batch was.
        """
        inputs, labels, task_ids = inputs.detach(), labels.detach(), task_ids.detach()
        self._bind_rank()
        self._allocate(inputs, logits)
        uniform = self.generator.uniform(inputs.shape[0], device=inputs.device)
        slots = reservoir_slots(seen=self.seen, uniform=uniform, capacity=self.capacity)
        writers = last_writers(slots, capacity=self.capacity)
        if keep is not None:
            writers = torch.where(keep.to(writers.device), writers, torch.full_like(writers, -1))
        self.inputs = write_slots(self.inputs, inputs, writers)
        self.labels = write_slots(self.labels, labels, writers)
        self.task_ids = write_slots(self.task_ids, task_ids, writers)
        if self.store_logits and logits is not None:
            widened = self._widened(logits.detach())  # may grow the stored logits first
            self.logits = write_slots(self.logits, widened, writers)
        added = torch.full_like(self.seen, inputs.shape[0])
        if keep is not None:
            added = torch.where(keep.to(added.device), added, torch.zeros_like(added))
        self.seen = self.seen + added

    def draw(self, count: int) -> MemoryBatch:
        """``count`` samples drawn uniformly (with replacement) from the occupied slots."""
        if self.inputs is None:
            raise ValueError("the memory is empty: insert samples before drawing from it")
        self._bind_rank()
        uniform = self.generator.uniform(count, device=self.inputs.device)
        index = draw_indices(fill=self.fill(), uniform=uniform)
        logits = None if self.logits is None else self.logits[index]
        return MemoryBatch(
            inputs=self.inputs[index],
            labels=self.labels[index],
            task_ids=self.task_ids[index],
            logits=logits,
        )

    def composition(self) -> dict[str, object]:
        """JSON-ready: samples seen, slots filled, and occupied slots per task (host reads)."""
        fill = int(self.fill())
        per_task: dict[str, int] = {}
        if self.task_ids is not None and fill:
            ids, counts = torch.unique(self.task_ids[:fill].cpu(), return_counts=True)
            per_task = {str(int(i)): int(c) for i, c in zip(ids, counts)}
        return {
            "seen": int(self.seen),
            "capacity": self.capacity,
            "fill": fill,
            "per_task": per_task,
        }

    def _bind_rank(self) -> None:
        """Before the first draw of this process: ranks r > 0 of a DDP run draw from their own
        seed (derived from the run's seed and r; another one after a resume)."""
        if self._rank_bound:
            return
        self._rank_bound = True
        rank = _process_rank()
        if rank == 0:
            return
        resumed = int(self.generator.state.numel() > 0)  # a shape: no host synchronisation
        self.generator.seed = derive_seed(self.generator.seed, "memory rank", rank, resumed)
        self.generator.state = torch.zeros(0, dtype=torch.uint8, device=self.seen.device)
        self.generator._generator = None

    def _allocate(self, inputs: torch.Tensor, logits: torch.Tensor | None) -> None:
        if self.inputs is not None:
            return
        device, size = inputs.device, (self.capacity,)
        self.inputs = torch.zeros(size + inputs.shape[1:], dtype=inputs.dtype, device=device)
        self.labels = torch.zeros(size, dtype=torch.long, device=device)
        self.task_ids = torch.zeros(size, dtype=torch.long, device=device)
        if self.store_logits and logits is not None:
            self.logits = torch.full(
                size + logits.shape[1:], float("-inf"), dtype=logits.dtype, device=device
            )

    def _widened(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits`` padded (and the stored logits grown) with ``-inf`` to a common width."""
        stored = self.logits.shape[1]
        if logits.shape[1] > stored:
            extra = logits.shape[1] - stored
            self.logits = nn.functional.pad(self.logits, (0, extra), value=float("-inf"))
        elif logits.shape[1] < stored:
            extra = stored - logits.shape[1]
            logits = nn.functional.pad(logits, (0, extra), value=float("-inf"))
        return logits

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # slot buffers appear at the first insertion: create them with the saved shapes first
        for name in _SLOTS:
            saved = state_dict.get(prefix + name)
            if saved is not None:
                setattr(self, name, torch.empty_like(saved, device=self.seen.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._rank_bound = False


def _process_rank() -> int:
    """This process's rank in an initialised process group of several processes (else 0)."""
    distributed = torch.distributed
    if distributed.is_available() and distributed.is_initialized():
        return distributed.get_rank() if distributed.get_world_size() > 1 else 0
    return 0
