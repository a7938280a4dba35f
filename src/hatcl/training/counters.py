"""The counters of the training module: correct predictions, and the batched-logging window.

Both keep their sums in tensors on the data's device, so a training step adds to them without
a host sync; they are read (one host sync) only when a log record or an epoch's value is due.
"""

from __future__ import annotations

import torch
import torchmetrics

__all__ = ["CorrectCount", "LoggingWindow", "correct_predictions"]


def correct_predictions(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """How many rows of ``logits`` have their largest value at the target (0-dim, on device)."""
    return (logits.argmax(1) == targets).sum()


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
        self.correct += correct_predictions(logits, targets)
        self.total += targets.numel()

    def compute(self) -> torch.Tensor:
        return torch.stack([self.correct, self.total])

    def value(self) -> float:
        """correct / total as a Python float (0 when empty): read once per epoch, not per step."""
        return float(self.correct) / max(int(self.total), 1)


class LoggingWindow:
    """Loss and accuracy summed over the steps since the last log (tensors: no host sync).

    Plain tensors and a Python sample count, not a metric object: it is added to at every
    training step, where a ``torchmetrics.Metric`` update costs tens of microseconds.
    """

    def __init__(self) -> None:
        self.loss: torch.Tensor | None = None
        self.correct: torch.Tensor | None = None
        self.total = 0
        self.steps = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Add one step's loss (0-dim) and its predictions to the window."""
        hits = correct_predictions(logits, targets)
        if self.loss is None or self.correct is None:
            self.loss, self.correct = loss, hits
        else:
            self.loss = self.loss + loss
            self.correct = self.correct + hits
        self.total += targets.numel()
        self.steps += 1

    def mean_loss(self) -> float:
        """The mean loss of the window's steps as a Python float (one host sync)."""
        return 0.0 if self.loss is None else float(self.loss) / max(self.steps, 1)

    def accuracy(self) -> float:
        """Correct / samples of the window's steps as a Python float (0 when empty)."""
        return 0.0 if self.correct is None else float(self.correct) / max(self.total, 1)

    def state(self) -> dict[str, object]:
        """The window as a checkpoint keeps it (CPU tensors, its step count)."""
        zero = torch.zeros(())
        return {
            "train_loss": (zero if self.loss is None else self.loss).detach().cpu(),
            "train_correct": torch.as_tensor(
                0 if self.correct is None else self.correct.detach().cpu(), dtype=torch.long
            ),
            "train_total": torch.tensor(self.total, dtype=torch.long),
            "steps": self.steps,
        }

    @classmethod
    def from_state(cls, state: dict) -> LoggingWindow:
        """The window :meth:`state` kept."""
        window = cls()
        window.steps = int(state["steps"])
        if window.steps:
            window.loss = state["train_loss"].clone()
            window.correct = state["train_correct"].clone()
        window.total = int(state["train_total"])
        return window
