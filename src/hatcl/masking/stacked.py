"""Several tasks' unit masks applied in one forward: the batch repeated once per task.

Task-agnostic inference runs a test batch under every seen task's mask. Instead of one forward
per task, a backbone that supports it (``Backbone.per_sample_masks``) runs one forward in which
the batch of N inputs stands C times, block c (rows ``c*N .. c*N+N-1``) under task c's mask.
Layers before the first mask see the N inputs once (their output does not depend on the task);
the first :class:`~hatcl.backbones.base.ApplyMask` spreads them into the C blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class StackedMask:
    """One mask key's masks of C tasks, applied to a batch of N inputs repeated C times.

    Attributes:
        masks: ``(C, units)``, row c the mask of the c-th task of the stack.
        batch: N, the number of inputs per task.
    """

    masks: torch.Tensor
    batch: int

    @property
    def tasks(self) -> int:
        """C, the number of tasks in the stack."""
        return self.masks.shape[0]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (N or C*N rows, units in dim 1) times each block's mask: C*N rows.

        Raises:
            ValueError: ``x`` has neither N nor C*N rows.
        """
        tasks, rows = self.tasks, x.shape[0]
        if rows == self.batch:
            blocks = x.unsqueeze(0)  # the same N rows for every task: broadcast
        elif rows == tasks * self.batch:
            blocks = x.view(tasks, self.batch, *x.shape[1:])
        else:
            raise ValueError(
                f"a stacked mask of {tasks} tasks x {self.batch} inputs cannot apply to "
                f"{rows} rows (expected {self.batch} or {tasks * self.batch})"
            )
        shape = (tasks, 1, self.masks.shape[1], *([1] * (x.dim() - 2)))
        masked = blocks * self.masks.view(shape)
        return masked.reshape(tasks * self.batch, *x.shape[1:])


def stacked_masks(
    stored: dict[str, torch.Tensor], rows: torch.Tensor, *, batch: int
) -> dict[str, StackedMask]:
    """Per key, the stacked masks of the stored rows ``rows`` (no host sync).

    Args:
        stored: per key, the stored masks ``(tasks stored, units)``.
        rows: int64 positions of the tasks to stack, on the masks' device.
        batch: N, the number of inputs per task.
    """
    return {
        key: StackedMask(masks=masks.index_select(0, rows), batch=batch)
        for key, masks in stored.items()
    }


def is_stacked(mask: object) -> bool:
    """Whether ``mask`` is a :class:`StackedMask` (not a plain unit mask)."""
    return isinstance(mask, StackedMask)
