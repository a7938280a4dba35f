"""Per-task binary masks, cumulative and summative masks, all held in buffers."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class MaskStore(nn.Module):
    """Stores the binary mask of every finished task, per mask key (layer of units).

    Buffers (all in ``state_dict``): ``task_ids`` (int64, one row per stored task),
    ``masks_<key>`` (tasks x units), ``cumulative_<key>`` (union of stored masks) and
    ``summative_<key>`` (how many stored tasks use each unit). Loading a state dict with a
    different number of stored tasks resizes the buffers.

    Args:
        unit_counts: number of units per mask key, in forward order.
    """

    def __init__(self, *, unit_counts: Mapping[str, int]) -> None:
        super().__init__()
        self.keys = tuple(unit_counts)
        self.register_buffer("task_ids", torch.zeros(0, dtype=torch.long))
        for key, units in unit_counts.items():
            self.register_buffer(f"masks_{key}", torch.zeros(0, units))
            self.register_buffer(f"cumulative_{key}", torch.zeros(units))
            self.register_buffer(f"summative_{key}", torch.zeros(units))

    @torch.no_grad()
    def store(self, *, task_id: int, masks: Mapping[str, torch.Tensor]) -> None:
        """Store (or replace) the binary masks of ``task_id`` and update the derived masks."""
        task_id = _as_task_id(task_id)
        missing = set(self.keys) - set(masks)
        if missing:
            raise ValueError(f"masks for task {task_id} lack the keys {sorted(missing)}")
        row = self._row(task_id)
        if row is None:
            self.task_ids = torch.cat([self.task_ids, self.task_ids.new_tensor([task_id])])
        for key in self.keys:
            stack = getattr(self, f"masks_{key}")
            mask = masks[key].detach().to(stack).reshape(1, -1)
            if row is None:
                stack = torch.cat([stack, mask])
            else:
                stack = stack.index_copy(0, _idx(row, stack.device), mask)
            setattr(self, f"masks_{key}", stack)
            setattr(self, f"cumulative_{key}", stack.amax(dim=0))
            setattr(self, f"summative_{key}", stack.sum(dim=0))

    def mask(self, task_id: int) -> dict[str, torch.Tensor]:
        """The stored binary masks of ``task_id``."""
        row = self._row(_as_task_id(task_id))
        if row is None:
            raise ValueError(
                f"no mask stored for task {task_id}; stored tasks: {self.stored_task_ids()}"
            )
        return {key: getattr(self, f"masks_{key}")[row] for key in self.keys}

    def stacks(self) -> dict[str, torch.Tensor]:
        """Per key, the stored masks of every task ``(tasks stored, units)``, in storing order."""
        return {key: getattr(self, f"masks_{key}") for key in self.keys}

    def rows(self, task_ids: torch.Tensor) -> torch.Tensor:
        """Positions in :meth:`stacks` of the stored tasks ``task_ids`` (on device, no sync).

        Every id must be stored (not checked here: the check would read the ids on the host).
        """
        hits = self.task_ids.to(task_ids.device)[None, :] == task_ids[:, None]
        return hits.long().argmax(dim=1)

    def cumulative(self) -> dict[str, torch.Tensor]:
        """Union of the stored masks per key (zeros before any task is stored)."""
        return {key: getattr(self, f"cumulative_{key}") for key in self.keys}

    def summative(self) -> dict[str, torch.Tensor]:
        """Per unit, the number of stored tasks that use it."""
        return {key: getattr(self, f"summative_{key}") for key in self.keys}

    def stored_task_ids(self) -> tuple[int, ...]:
        """The ids of the tasks with a stored mask, in storing order."""
        return tuple(int(t) for t in self.task_ids.tolist())

    def _row(self, task_id: int) -> int | None:
        hits = (self.task_ids == task_id).nonzero()
        return int(hits[0, 0]) if len(hits) else None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        for name, buffer in self._buffers.items():
            incoming = state_dict.get(prefix + name)
            if incoming is not None and buffer is not None and incoming.shape != buffer.shape:
                self._buffers[name] = torch.empty_like(incoming, device=buffer.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _as_task_id(task_id: object) -> int:
    if isinstance(task_id, bool) or not isinstance(task_id, int) or task_id < 1:
        raise TypeError(f"task ids are positive ints, got {task_id!r}")
    return task_id


def _idx(row: int, device: torch.device) -> torch.Tensor:
    return torch.tensor([row], device=device)
