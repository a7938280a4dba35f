"""Distributed training helpers: process rank, batch sharding, reductions, the DDP strategy.

Lightning's DDP launcher starts the other processes by re-running the same command; each process
builds the same data, model and algorithm from the same seed. Parameters stay identical because
DDP averages gradients, so masks (thresholded embeddings) are identical everywhere. State that a
process accumulates from its own shard (test accuracy counts, importance sums and counts) is
summed across processes before it is used, so every process ends a task with the same state.
Modules that set ``rank_local_state = True`` (the replay memory) keep one state per process: DDP
neither broadcasts nor compares their buffers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import lightning as L
import torch
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities import rank_zero_only

from hatcl.training.batches import TensorBatches


def global_rank() -> int:
    """This process's rank (0 without distributed training), as Lightning determines it."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(getattr(rank_zero_only, "rank", 0) or 0)


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    )


def all_reduce_sum(tensors: Iterable[torch.Tensor]) -> None:
    """Sum each tensor across processes, in place (a no-op without distributed training)."""
    if not is_distributed():
        return
    for tensor in tensors:
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)


@torch.no_grad()
def broadcast_buffers(module: torch.nn.Module) -> None:
    """Copy every buffer of ``module`` from rank 0 (e.g. batch-norm statistics after a task)."""
    if not is_distributed():
        return
    for buffer in module.buffers():
        torch.distributed.broadcast(buffer, src=0)


def resolve_strategy(name: str) -> str | L.pytorch.strategies.Strategy:
    """Lightning's strategy for ``trainer.strategy``.

    ``ddp`` finds unused parameters: the heads of earlier tasks take no gradient while a later
    task trains, which plain DDP reports as an error. Rank-local buffers (the replay memory) are
    left to each process by :meth:`ContinualModule.setup`, before the strategy wraps the module.
    """
    if name == "ddp":
        return DDPStrategy(find_unused_parameters=True)
    return name


def rank_local_buffer_names(module: torch.nn.Module) -> list[str]:
    """Names of the buffers of the modules (and their children) with ``rank_local_state``.

    Buffers not created yet (``None``, e.g. memory slots before the first insertion) are named
    too, so they stay rank-local once they exist.
    """
    names: list[str] = []
    for prefix, owner in module.named_modules():
        if not getattr(owner, "rank_local_state", False):
            continue
        for sub_prefix, sub in owner.named_modules(prefix=prefix):
            names += [f"{sub_prefix}.{key}" if sub_prefix else key for key in sub._buffers]
    return sorted(set(names))


def ignore_rank_local_buffers(module: torch.nn.Module) -> None:
    """Mark ``module``'s rank-local buffers as ignored by the DDP wrapper built around it."""
    from torch.nn.parallel import DistributedDataParallel

    names = rank_local_buffer_names(module)
    if names:
        already = list(getattr(module, "_ddp_params_and_buffers_to_ignore", ()))
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
            module, sorted(set(already) | set(names))
        )


class ShardBatches(L.Callback):
    """Give each process its shard of the batches once the trainer knows its rank.

    Args:
        sources: the batch iterables of one ``fit`` or ``test`` call.
    """

    def __init__(self, sources: Sequence[TensorBatches | None]) -> None:
        super().__init__()
        self.sources = [source for source in sources if source is not None]

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for source in self.sources:
            source.set_shard(rank=trainer.global_rank, world_size=trainer.world_size)
