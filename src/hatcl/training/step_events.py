"""Before every training step: the run's observers, in-task checkpoints, stop requests; signals.

:class:`StepEvents` is where the run's observers meet Lightning's loop: it tells every
:class:`~hatcl.training.run_callbacks.RunCallback` the step about to run, hatcl's own
:class:`InTaskCheckpoints` (stop flag, periodic checkpoints) last.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L

from hatcl.training.interrupt import RunInterrupted, StopRequest
from hatcl.training.position import TASK_START, TaskPosition
from hatcl.training.run_callbacks import RunCallback


class StepEvents(L.Callback):
    """The one bridge from Lightning's loop to the run's observers, before every training step.

    Each :class:`hatcl.training.run_callbacks.RunCallback` in ``observers`` is told the task's
    step (the user's first, hatcl's :class:`InTaskCheckpoints` last); the steps a resumed task
    passes over are not steps.

    Args:
        task_id: the task trained.
        batches: the task's training batches (their epoch-start generator state is the
            position's).
    """

    def __init__(self, *, task_id: int, batches: Any) -> None:
        super().__init__()
        self.task_id = task_id
        self.batches = batches
        self.observers: tuple[RunCallback, ...] = ()
        self._position = TASK_START

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if pl_module.skips(batch_idx):
            return
        self._position = pl_module.task_position(batch_idx)
        for observer in self.observers:
            observer.on_step(task_id=self.task_id, step=self._position.step)

    def position(self) -> TaskPosition:
        """The position of the step about to run, with its epoch's batch-order state."""
        state = self.batches.epoch_generator_state
        if state is None:
            return self._position
        return replace(self._position, generator_state=state)


class InTaskCheckpoints(RunCallback):
    """hatcl's own observer of the steps: the stop flag and the in-task checkpoints.

    Before a step, on a stop request or every ``every_n_steps`` steps, the state before the step
    is saved; on a stop request the run then ends with :class:`RunInterrupted`.

    Args:
        request: the stop flag.
        position: the position of the step about to run (:meth:`StepEvents.position`).
        save: writes the in-task checkpoint for a position; returns its path (None: disabled).
        every_n_steps: also checkpoint every n steps (None: only on a stop request).
        total_steps: the task's steps in all.
        run_dir: the run folder (named in the interruption).
    """

    def __init__(
        self,
        *,
        request: StopRequest,
        position: Callable[[], TaskPosition],
        save: Callable[[TaskPosition], Path | None],
        every_n_steps: int | None,
        total_steps: int,
        run_dir: Path,
    ) -> None:
        self.request = request
        self.position = position
        self.save = save
        self.every_n_steps = every_n_steps
        self.total_steps = total_steps
        self.run_dir = run_dir

    def on_step(self, *, task_id: int, step: int) -> None:
        periodic = bool(self.every_n_steps) and step > 0 and step % self.every_n_steps == 0
        if not (self.request or periodic):
            return
        path = self.save(self.position())
        if self.request:
            raise RunInterrupted(
                signum=int(self.request.signum),
                task_id=task_id,
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
