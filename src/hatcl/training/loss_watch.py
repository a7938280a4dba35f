"""A diverging run is not silent: the training loss checked where it is read anyway.

The loss of every step is summed into the logging window as a tensor; the window's mean is read
on the host once every ``log_every_n_steps`` steps (and at each epoch's end), and only there is
it checked, so a step never waits for the device. A non-finite mean (a ``nan`` or ``inf`` loss
in the window) or one grown :data:`EXPLOSION_FACTOR`-fold over the smallest mean of the task is
reported once, with the task and step (the first reference: the loss of the task's first
step); with ``trainer.stop_on_nonfinite=true`` (the default) a
non-finite loss stops the run with :class:`TrainingDiverged` (the checkpoints of the tasks
before stay intact).
"""

from __future__ import annotations

import logging
import math
import sys

#: A window mean this many times the smallest one of the task counts as an exploding loss.
EXPLOSION_FACTOR = 1000.0

_LOGGER = logging.getLogger("hatcl")


class TrainingDiverged(RuntimeError):
    """The training loss became non-finite (``trainer.stop_on_nonfinite=true``).

    Attributes:
        task_id: the task trained.
        step: the run's step by which the loss was found non-finite.
    """

    def __init__(self, message: str, *, task_id: int, step: int) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.step = step


class LossWatch:
    """Checks each logging window's mean training loss (host values only).

    Args:
        stop_on_nonfinite: raise :class:`TrainingDiverged` on a non-finite loss (else warn).
        report: whether this process reports (rank 0).
    """

    def __init__(self, *, stop_on_nonfinite: bool = True, report: bool = True) -> None:
        self.stop_on_nonfinite = stop_on_nonfinite
        self.report = report
        self._task_id: int | None = None
        self._smallest: float | None = None
        self._warned: set[str] = set()

    def check(
        self, mean_loss: float, *, task_id: int, step: int, first_loss: float | None = None
    ) -> None:
        """Check one window's mean loss, ending at run step ``step`` of task ``task_id``.

        ``first_loss`` is the loss of the task's first step (before any update of the task), the
        first reference of the growth check.
        """
        if task_id != self._task_id:
            self._task_id, self._smallest = task_id, None
        if first_loss is not None and math.isfinite(first_loss) and self._smallest is None:
            self._smallest = first_loss
        if not math.isfinite(mean_loss):
            message = (
                f"the training loss became {mean_loss} in task {task_id} by step {step} (the "
                "optimisation diverged: lower optimizer.lr, or check the data and the model)"
            )
            if self.stop_on_nonfinite:
                raise TrainingDiverged(
                    f"{message}; the run stopped (trainer.stop_on_nonfinite=true)",
                    task_id=task_id,
                    step=step,
                )
            self._warn("nonfinite", message)
            return
        if self._smallest is None or mean_loss < self._smallest:
            self._smallest = mean_loss
        elif mean_loss > EXPLOSION_FACTOR * max(self._smallest, 1e-12):
            self._warn(
                "exploding",
                f"the training loss grew from {self._smallest:.4g} to {mean_loss:.4g} in task "
                f"{task_id} by step {step} (more than {EXPLOSION_FACTOR:g}-fold: the "
                "optimisation may be diverging; lower optimizer.lr)",
            )

    def _warn(self, kind: str, message: str) -> None:
        if kind in self._warned or not self.report:
            return
        self._warned.add(kind)
        _LOGGER.warning(message)
        print(f"hatcl: warning: {message}", file=sys.stderr, flush=True)
