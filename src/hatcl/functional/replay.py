"""Pure tensor math of rehearsal: reservoir slots, replay draws, own-head logits, DER's MSE.

Reservoir sampling is Vitter's algorithm R (ACM TOMS 1985) applied to a whole batch at once:
the n-th sample of the stream (n from 1) goes to slot n - 1 while n <= M, otherwise to a slot
drawn uniformly from [0, n), kept only if that slot is < M. When two samples of one batch pick
the same slot, the later one wins, exactly as the one-at-a-time algorithm would leave it.
"""

from __future__ import annotations

import torch
from torch import Tensor


def reservoir_slots(*, seen: Tensor, uniform: Tensor, capacity: int) -> Tensor:
    """The slot each sample of a batch is written to (``capacity`` = not stored).

    Args:
        seen: 0-dim int64, samples of the stream before this batch.
        uniform: one draw from U[0, 1) per sample of the batch (float64 for long streams).
        capacity: M, the number of slots.

    Returns:
        int64 slots in ``[0, capacity]``, one per sample.
    """
    count = torch.arange(1, uniform.shape[0] + 1, device=uniform.device) + seen.to(uniform.device)
    drawn = torch.minimum((uniform * count.to(uniform.dtype)).long(), count - 1)
    slots = torch.where(count <= capacity, count - 1, drawn)
    return torch.where(slots < capacity, slots, torch.full_like(slots, capacity))


def last_writers(slots: Tensor, *, capacity: int) -> Tensor:
    """Per slot, the batch position of the sample written there last (-1: none).

    Args:
        slots: :func:`reservoir_slots` of a batch.
        capacity: M.

    Returns:
        int64 of shape ``(capacity,)``.
    """
    positions = torch.arange(slots.shape[0], device=slots.device)
    winners = torch.full((capacity + 1,), -1, dtype=torch.long, device=slots.device)
    winners = winners.scatter_reduce(0, slots, positions, reduce="amax", include_self=True)
    return winners[:capacity]


def write_slots(store: Tensor, values: Tensor, writers: Tensor) -> Tensor:
    """``store`` with every slot that has a writer replaced by that writer's row of ``values``."""
    taken = values[writers.clamp(min=0)].to(store.dtype)
    keep = (writers < 0).reshape(-1, *([1] * (store.dim() - 1)))
    return torch.where(keep, store, taken)


def draw_indices(*, fill: Tensor, uniform: Tensor) -> Tensor:
    """Indices drawn uniformly from ``[0, fill)`` (one per draw of ``uniform``; ``fill`` >= 1)."""
    fill = fill.to(uniform.device)
    return torch.minimum((uniform * fill.to(uniform.dtype)).long(), fill - 1)


def own_head_logits(per_head: list[Tensor], index: Tensor) -> Tensor:
    """Each sample's logits from its own head, padded with ``-inf`` to the widest head.

    Args:
        per_head: logits of every head for the whole batch, ``(B, K_h)`` each.
        index: per sample, the position of its head in ``per_head`` (int64, ``(B,)``).
    """
    width = max(logits.shape[1] for logits in per_head)
    padded = [
        torch.nn.functional.pad(logits, (0, width - logits.shape[1]), value=float("-inf"))
        for logits in per_head
    ]
    stacked = torch.stack(padded)  # (H, B, K)
    rows = torch.arange(index.shape[0], device=index.device)
    return stacked[index, rows]


def covered_mse(current: Tensor, stored: Tensor) -> Tensor:
    """Mean squared error over the entries the stored logits cover (finite entries only).

    Stored logits are padded with ``-inf`` beyond the classes known when they were recorded; the
    mean runs over the covered entries of the whole batch (DER, Buzzega et al. 2020, eq. 6).
    """
    covered = torch.isfinite(stored)
    width = min(current.shape[1], stored.shape[1])
    covered = covered[:, :width]
    current = torch.where(covered, current[:, :width], torch.zeros_like(current[:, :width]))
    stored = torch.where(covered, stored[:, :width], torch.zeros_like(stored[:, :width]))
    squares = (current - stored.to(current.dtype)).square()
    return squares.sum() / covered.sum().clamp(min=1).to(current.dtype)
