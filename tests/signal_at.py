"""A run observer that interrupts the run at a chosen moment, as a scheduler or Ctrl-C would."""

from __future__ import annotations

import os
import signal

from hatcl.training.run_callbacks import RunCallback


class SignalAt(RunCallback):
    """Send ``signum`` to this process right before step ``step`` of task ``task_id`` (a step
    counted within the task), or, with ``step=None``, right after that task's checkpoint."""

    def __init__(self, *, task_id: int, step: int | None, signum: int = signal.SIGTERM) -> None:
        self.task_id, self.step, self.signum = task_id, step, signum

    def on_step(self, *, task_id: int, step: int) -> None:
        if (task_id, step) == (self.task_id, self.step):
            os.kill(os.getpid(), self.signum)

    def on_task_saved(self, *, task_id: int, run_dir) -> None:  # noqa: ANN001
        if self.step is None and task_id == self.task_id:
            os.kill(os.getpid(), self.signum)
