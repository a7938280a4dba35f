"""The check before every training step: run hooks, periodic in-task checkpoints, stop requests."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from hatcl.training.interrupt import RunInterrupted, StopRequest, TaskPosition


class StepGuard(L.Callback):
    """Before every training step: step hooks, the periodic checkpoint, the stop flag.

    Args:
        request: the stop flag.
        batches: the task's training batches (their epoch-start generator state is saved).
        save: writes the in-task checkpoint for a position; returns its path (None: disabled).
        every_n_steps: also checkpoint every n steps (None: only on a stop request).
        on_step: called with the task's step count before each step (run callbacks).
        task_id: the task trained.
        total_steps: the task's steps in all.
        run_dir: the run folder (named in the interruption).
    """

    def __init__(
        self,
        *,
        request: StopRequest,
        batches: Any,
        save: Callable[[L.Trainer, TaskPosition], Path | None],
        every_n_steps: int | None,
        on_step: Sequence[Callable[[int], None]],
        task_id: int,
        total_steps: int,
        run_dir: Path,
    ) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.request = request
        self.batches = batches
        self.save = save
        self.every_n_steps = every_n_steps
        self.on_step = list(on_step)
        self.task_id = task_id
        self.total_steps = total_steps

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if pl_module.skips(batch_idx):
            return
        epoch, index, step = pl_module.task_position(batch_idx)
        for hook in self.on_step:
            hook(step)
        periodic = bool(self.every_n_steps) and step > 0 and step % self.every_n_steps == 0
        if not (self.request or periodic):
            return
        state = self.batches.epoch_generator_state
        position = TaskPosition(
            epoch=epoch,
            batch=index,
            step=step,
            generator_state=torch.empty(0, dtype=torch.uint8) if state is None else state,
        )
        path = self.save(trainer, position)
        if self.request:
            raise RunInterrupted(
                signum=int(self.request.signum),
                task_id=self.task_id,
                step=step,
                total_steps=self.total_steps,
                run_dir=self.run_dir,
                checkpoint=path,
            )


class KeepStopSignals(L.Callback):
    """Keep hatcl's SIGTERM handler while Lightning runs a stage.

    Lightning installs its own SIGTERM handler when ``fit``/``test`` starts; it chains the one it
    found but then ends the epoch loop with ``SIGTERMException``, a ``SystemExit`` whose exit
    code is 0, before hatcl's check of the next step can write a checkpoint. When the handler in
    place at ``setup`` is a :class:`StopRequest`'s, it is put back as soon as the stage starts
    (Lightning restores it itself at teardown); any other handler is left to Lightning.
    """

    def __init__(self) -> None:
        super().__init__()
        self._handler: Any = None

    def setup(self, trainer, pl_module, stage: str) -> None:  # noqa: ANN001
        handler = signal.getsignal(signal.SIGTERM)
        owner = getattr(handler, "__self__", None)
        self._handler = handler if isinstance(owner, StopRequest) else None

    def _restore(self) -> None:
        if self._handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._handler)

    def on_train_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self._restore()

    def on_test_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self._restore()

    def on_validation_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self._restore()
