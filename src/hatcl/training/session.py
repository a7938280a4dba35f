"""The state of one run's task sequence and the bookkeeping around each task.

:class:`RunSession` is what the runner's task loop shares between its helpers (configuration,
run folder, module, data, progress, logger, callbacks, stop flag); the functions here record a
tested task, build the observers of a task's steps (the run's callbacks, then stop requests and
in-task checkpoints) and stop the run between tasks. The loop itself is
:mod:`hatcl.training.runner`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from rich.console import Console

from hatcl.data.base import ContinualData
from hatcl.reporting.console import task_line
from hatcl.training.checkpoint import RunProgress, checkpoint_path
from hatcl.training.experiment import ExperimentConfig
from hatcl.training.interrupt import RunInterrupted, StopRequest
from hatcl.training.loggers import RunLogger
from hatcl.training.module import ContinualModule
from hatcl.training.position import InTaskResume, TaskPosition
from hatcl.training.resume_state import save_in_task_checkpoint
from hatcl.training.run_callbacks import RunCallback
from hatcl.training.step_events import InTaskCheckpoints, StepEvents

__all__ = ["RunSession", "record_task", "step_events", "stop_between_tasks"]


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
    pending: InTaskResume | None = None  # where the next task continues from (resumed run)
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


def step_events(
    session: RunSession, batches, *, task_id: int, request: StopRequest
) -> StepEvents:
    """The observers of one task's steps: the run's callbacks, then the in-task checkpoints."""
    events = StepEvents(task_id=task_id, batches=batches)
    checkpoints = InTaskCheckpoints(
        request=request,
        position=events.position,
        save=partial(_save_in_task_checkpoint, session, task_id),
        every_n_steps=session.config.trainer.checkpoint_every_n_steps,
        total_steps=len(batches) * session.config.trainer.max_epochs,
        run_dir=session.folder,
    )
    events.observers = (*session.callbacks, checkpoints)
    return events


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
    session: RunSession, task_id: int, position: TaskPosition
) -> Path | None:
    """``in_task_<t>.ckpt`` of the session (rank 0, checkpoints on); its path or None."""
    if session.rank != 0 or not session.config.trainer.checkpoints:
        return None
    return save_in_task_checkpoint(
        module=session.module,
        progress=session.progress,
        folder=session.folder,
        task_id=task_id,
        trainer=session.module.trainer,
        position=position,
    )
