"""Distributed training helpers: process rank, batch sharding, reductions, the DDP strategy.

Lightning's DDP launcher starts the other processes by re-running the same command; each process
builds the same data, model and algorithm from the same seed. Parameters stay identical because
DDP averages gradients, so masks (thresholded embeddings) are identical everywhere. State that a
process accumulates from its own shard (test accuracy counts, importance sums and counts) is
summed across processes before it is used, so every process ends a task with the same state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import lightning as L
import torch
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
    task trains, which plain DDP reports as an error.
    """
    if name == "ddp":
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(find_unused_parameters=True)
    return name


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
