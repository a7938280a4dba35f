"""The counters of the training module: correct predictions, and the batched-logging window.

Both keep their sums in tensors on the data's device, so a training step adds to them without
a host sync; they are read (one host sync) only when a log record or an epoch's value is due.
"""

from __future__ import annotations

import torch
import torchmetrics

__all__ = ["CorrectCount", "LoggingWindow"]


class CorrectCount(torchmetrics.Metric):
    """Correct predictions and samples (test counts, validation and training accuracy).

    Both counts are tensors on the logits' device (no host sync per batch), reduced by sum
    across processes.
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__(sync_on_compute=False)
        self.add_state("correct", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        if self.correct.device != logits.device:  # a counter outside the module follows the data
            self.to(logits.device)
        self.correct += (logits.argmax(1) == targets).sum()
        self.total += targets.numel()

    def compute(self) -> torch.Tensor:
        return torch.stack([self.correct, self.total])

    def value(self) -> float:
        """correct / total as a Python float (0 when empty): read once per epoch, not per step."""
        return float(self.correct) / max(int(self.total), 1)


class LoggingWindow:
    """Loss and accuracy summed over the steps since the last log (tensors: no host sync)."""

    def __init__(self) -> None:
        self.loss = torch.zeros(())
        self.accuracy = CorrectCount()
        self.steps = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Add one step's loss (0-dim) and its predictions to the window."""
        self.loss = self.loss.to(loss) + loss
        self.accuracy.update(logits, targets)
        self.steps += 1

    def mean_loss(self) -> float:
        """The mean loss of the window's steps as a Python float (one host sync)."""
        return float(self.loss) / max(self.steps, 1)
