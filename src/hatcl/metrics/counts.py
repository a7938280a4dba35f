"""Test counts of a task tested without its task id (``head=cil``/``dil``)."""

from __future__ import annotations

import torch
import torchmetrics


class TaskAgnosticCount(torchmetrics.Metric):
    """TAg hits, samples, TAw hits and task-id hits of one task's test set, summed across processes.

    The accuracies are hits / samples: task-agnostic (the headline), task-aware and task-id
    (spec/class-incremental.md).
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__(sync_on_compute=False)
        for name in ("correct", "total", "aware", "task"):
            self.add_state(name, default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, counts: torch.Tensor, samples: int) -> None:
        """Add ``[TAg correct, TAw correct, task-id correct]`` of ``samples`` samples."""
        self.correct += counts[0]
        self.aware += counts[1]
        self.task += counts[2]
        self.total += samples

    def compute(self) -> torch.Tensor:
        """``[TAg correct, samples, TAw correct, task-id correct]``."""
        return torch.stack([self.correct, self.total, self.aware, self.task])
