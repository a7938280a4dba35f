"""Resume as one object: what a run saves to continue later, and how it continues.

A run saves ``task_<t>.ckpt`` after each task (:func:`save_task_checkpoint`) and, on a stop
request or every n steps, ``in_task_<t>.ckpt`` with its :class:`TaskPosition`
(:func:`save_in_task_checkpoint`). To continue, :func:`open_resume` checks the folder and loads
the newest intact task checkpoint and the next task's in-task checkpoint once (the run's preflight
calls it, or :func:`hatcl.training.plan.plan_run`); the runner calls
:meth:`ResumeState.restore` once, before the first task. The file format is
:mod:`hatcl.training.checkpoint`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hatcl.training.checkpoint import (
    CheckpointError,
    RunProgress,
    capture,
    check_identity,
    checkpoint_path,
    checkpoints_newest_first,
    load_checkpoint,
    restore,
    save_checkpoint,
)
from hatcl.training.interrupt import in_task_path
from hatcl.training.position import InTaskResume, TaskPosition
from hatcl.training.resume_check import check_resumable

if TYPE_CHECKING:
    import lightning as L

    from hatcl.data.base import ContinualData
    from hatcl.training.module import ContinualModule

_LOGGER = logging.getLogger("hatcl")


@dataclass(frozen=True)
class ResumeState:
    """A checked ``resume=`` folder and its checkpoints, loaded once.

    Built by :func:`open_resume` (the run's preflight, or :func:`hatcl.training.plan.plan_run`);
    the runner restores it with :meth:`restore`, once, before the first task.

    Attributes:
        folder: the run folder to continue.
        last_task: the newest intact ``task_<t>.ckpt`` (``None``: start again at task 1).
        in_task: the intact ``in_task_<t+1>.ckpt`` of the next task, if there is one.
        damaged: every checkpoint newer than the one used that cannot be read; renamed to
            ``<name>.damaged`` when the run starts (:meth:`set_aside_damaged`).
        identity_checked: the checkpoints' algorithm and shapes were checked against a model of
            this configuration (a user's network is only built when the run starts).
    """

    folder: Path
    last_task: Mapping[str, Any] | None
    in_task: Mapping[str, Any] | None
    damaged: tuple[CheckpointError, ...]
    identity_checked: bool

    def set_aside_damaged(self) -> None:
        """Rename the damaged checkpoints to ``<name>.damaged`` (kept, never used)."""
        for error in self.damaged:
            if error.path.exists():
                error.path.rename(error.path.with_name(f"{error.path.name}.damaged"))

    def restore(
        self, module: ContinualModule, data: ContinualData
    ) -> tuple[RunProgress, InTaskResume | None]:
        """Load the state into ``module``: the last complete task, then where the next stopped.

        Returns the run's progress and the next task's resume point (``None``: the task starts
        from its beginning). The in-task states themselves are loaded once its ``fit`` began.
        """
        if self.last_task is None:
            _LOGGER.info("resume: no checkpoint in %s; starting at task 1", self.folder)
            progress = RunProgress()
        else:
            _LOGGER.info("resume: continuing after %s", Path(self.last_task["file"]).name)
            progress = restore(
                self.last_task,
                module=module,
                num_classes=[task.num_classes for task in data.tasks],
                identity_checked=self.identity_checked,
            )
        return progress, self._in_task_point(module, progress)

    def _in_task_point(self, module: ContinualModule, progress: RunProgress):
        payload = self.in_task
        if payload is None:
            return None
        if not self.identity_checked:
            try:
                check_identity(
                    payload, model=module.model, algorithm=module.algorithm, path=payload["file"]
                )
            except CheckpointError as error:
                _LOGGER.warning(
                    "resume: %s; task %d starts from its beginning", error, progress.completed + 1
                )
                return None
        _LOGGER.info(
            "resume: continuing inside task %d from %s",
            progress.completed + 1,
            Path(payload["file"]).name,
        )
        module.curves = [dict(record) for record in payload["metrics"]["curves"]]
        module.load_loop_state(payload["loop"])
        return InTaskResume.from_checkpoint(payload)


def open_resume(
    run_dir: str | Path, *, config_text: str, model=None, algorithm=None
) -> ResumeState:
    """Check that ``run_dir`` is an unfinished run of ``config_text`` and load its checkpoints.

    The newest intact task checkpoint and the next task's in-task checkpoint are loaded (each
    once); with ``model`` (a model of this configuration, e.g. on the ``meta`` device) their
    identity is checked too.

    Raises:
        FileNotFoundError, ValueError: not a run folder, a finished run, another configuration.
        CheckpointError: the newest intact checkpoint belongs to another algorithm or model.
    """
    folder = check_resumable(run_dir, config_text=config_text)
    damaged: list[CheckpointError] = []
    last_task = _first_readable(checkpoints_newest_first(folder), damaged)
    completed = int(last_task.get("completed_tasks", 0)) if last_task is not None else 0
    in_task_file = in_task_path(folder, completed + 1)
    in_task = _first_readable([in_task_file] if in_task_file.exists() else [], damaged)
    if model is not None:
        for payload in (last_task, in_task):
            if payload is not None:
                check_identity(payload, model=model, algorithm=algorithm, path=payload["file"])
    return ResumeState(
        folder=folder,
        last_task=last_task,
        in_task=in_task,
        damaged=tuple(damaged),
        identity_checked=model is not None,
    )


def _first_readable(paths, damaged: list[CheckpointError]) -> Mapping[str, Any] | None:
    """The first of ``paths`` that loads; the unreadable ones before it are added to ``damaged``."""
    for path in paths:
        try:
            payload = load_checkpoint(path)
        except CheckpointError as error:
            damaged.append(error)
            continue
        return payload  # its path is under "file"
    return None


def trainer_states(trainer: L.Trainer) -> tuple[dict | None, dict | None]:
    optimizer = trainer.optimizers[0].state_dict() if trainer.optimizers else None
    schedulers = trainer.lr_scheduler_configs
    scheduler = schedulers[0].scheduler.state_dict() if schedulers else None
    return optimizer, scheduler


def save_task_checkpoint(
    *, module: ContinualModule, progress: RunProgress, folder: Path, trainer: L.Trainer
) -> None:
    """Write ``task_<t>.ckpt`` after the ``progress.completed``-th task."""
    optimizer, scheduler = trainer_states(trainer)
    payload = capture(module=module, progress=progress, optimizer=optimizer, scheduler=scheduler)
    save_checkpoint(checkpoint_path(folder, progress.completed), payload)


def save_in_task_checkpoint(
    *,
    module: ContinualModule,
    progress: RunProgress,
    folder: Path,
    task_id: int,
    trainer: L.Trainer,
    position: TaskPosition,
) -> Path:
    """Write ``in_task_<t>.ckpt``: the state before the step at ``position``."""
    optimizer, scheduler = trainer_states(trainer)
    payload = capture(module=module, progress=progress, optimizer=optimizer, scheduler=scheduler)
    payload["position"] = position.as_payload()
    return save_checkpoint(in_task_path(folder, task_id), payload)
