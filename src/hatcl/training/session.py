"""The state of one run's task sequence and the bookkeeping around each task.

:class:`RunSession` is what the runner's task loop shares between its helpers (configuration,
run folder, module, data, progress, logger, callbacks, stop flag); the functions here record a
tested task, build a task's step guard (stop requests, in-task checkpoints, step callbacks) and
stop the run between tasks. The loop itself is :mod:`hatcl.training.runner`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import lightning as L
from rich.console import Console

from hatcl.data.base import ContinualData
from hatcl.reporting.console import task_line
from hatcl.training.checkpoint import RunProgress, checkpoint_path
from hatcl.training.experiment import ExperimentConfig
from hatcl.training.interrupt import RunInterrupted, StopRequest, TaskPosition
from hatcl.training.loggers import RunLogger
from hatcl.training.module import ContinualModule
from hatcl.training.resume import save_in_task_checkpoint
from hatcl.training.run_callbacks import RunCallback
from hatcl.training.step_guard import StepGuard

__all__ = ["RunSession", "record_task", "step_guard", "stop_between_tasks"]


@dataclass
class RunSession:
    """The state of one run shared by the task loop's helpers."""

    config: ExperimentConfig
    folder: Path
    module: ContinualModule
    data: ContinualData
    console: Console
    progress: RunProgress
    run_logger: RunLogger
    rank: int
    callbacks: Sequence[RunCallback]
    task_seconds: list[float] = field(default_factory=list)
    pending: tuple[dict, TaskPosition] | None = None  # an in-task checkpoint to continue from
    stop: StopRequest | None = None  # the caller's stop flag (None: the run routes the signals)


def stop_between_tasks(session: RunSession, request: StopRequest, *, signum: int = 0) -> None:
    """Raise :class:`RunInterrupted` after the last saved task if a stop was requested."""
    if not (request or signum):
        return
    completed = session.progress.completed
    saved = checkpoint_path(session.folder, completed) if completed else None
    raise RunInterrupted(
        signum=int(request.signum or signum),
        task_id=completed,
        step=None,
        total_steps=None,
        run_dir=session.folder,
        checkpoint=saved if saved is not None and saved.exists() else None,
    )


def step_guard(session: RunSession, batches, *, task_id: int, request: StopRequest) -> StepGuard:
    """The guard of one task's steps: the stop flag, in-task checkpoints, the step callbacks."""
    hooks = [partial(_on_step, callback, task_id) for callback in session.callbacks]
    return StepGuard(
        request=request,
        batches=batches,
        save=partial(_save_in_task_checkpoint, session, task_id),
        every_n_steps=session.config.trainer.checkpoint_every_n_steps,
        on_step=hooks,
        task_id=task_id,
        total_steps=len(batches) * session.config.trainer.max_epochs,
        run_dir=session.folder,
    )


def _on_step(callback: RunCallback, task_id: int, step: int) -> None:
    callback.on_step(task_id=task_id, step=step)


def record_task(session: RunSession, *, task_id: int, row: list[float]) -> None:
    """Record a tested task: accuracy row, summary, progress, logger and console line."""
    progress, module = session.progress, session.module
    progress.matrix.append(row)
    progress.summaries.append(
        {
            "task": task_id,
            **module.test_report,
            **module.algorithm.task_summary(task_id=task_id, model=module.model),
        }
    )
    progress.completed = task_id
    session.run_logger.log_test(task_id=task_id, row=row)
    progress.log_step = session.run_logger.step
    task_line(session.console, task_id=task_id, num_tasks=len(session.data.tasks), row=row)


def _save_in_task_checkpoint(
    session: RunSession, task_id: int, trainer: L.Trainer, position: TaskPosition
) -> Path | None:
    """``in_task_<t>.ckpt`` of the session (rank 0, checkpoints on); its path or None."""
    if session.rank != 0 or not session.config.trainer.checkpoints:
        return None
    return save_in_task_checkpoint(
        module=session.module,
        progress=session.progress,
        folder=session.folder,
        task_id=task_id,
        trainer=trainer,
        position=position,
    )
