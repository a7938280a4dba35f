"""Resume and checkpoints of a run: restore the last task, the in-task position, save both.

:mod:`hatcl.training.checkpoint` holds the file format; this module what a run saves and
restores through it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L

from hatcl.data.base import ContinualData
from hatcl.reporting.run_folder import prepare_run_dir, write_text
from hatcl.training.checkpoint import (
    CheckpointError,
    RunProgress,
    capture,
    check_identity,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    restore,
    save_checkpoint,
)
from hatcl.training.interrupt import TaskPosition, in_task_path
from hatcl.training.loggers import records_logged
from hatcl.training.module import ContinualModule
from hatcl.training.resume_check import check_resumable

_LOGGER = logging.getLogger("hatcl")


def resume_progress(folder: Path, module: ContinualModule, data: ContinualData) -> RunProgress:
    """Restore the last complete task's checkpoint (a fresh start if there is none)."""
    path = latest_checkpoint(folder)
    if path is None:
        _LOGGER.info("resume: no checkpoint in %s; starting at task 1", folder)
        return RunProgress()
    _LOGGER.info("resume: continuing after %s", path.name)
    return restore(
        load_checkpoint(path),
        module=module,
        num_classes=[task.num_classes for task in data.tasks],
    )


def pending_in_task(
    folder: Path, module: ContinualModule, progress: RunProgress
) -> tuple[dict, TaskPosition] | None:
    """The in-task checkpoint of the task after the last complete one, if there is one.

    Its curves and logging window are taken now (the run logger starts after them); the model,
    optimizer and RNG states are loaded once the task's ``fit`` has started.
    """
    path = in_task_path(folder, progress.completed + 1)
    if not path.exists():
        return None
    try:
        payload = load_checkpoint(path)
        check_identity(payload, model=module.model, algorithm=module.algorithm, path=path)
    except CheckpointError as error:
        _LOGGER.warning(
            "resume: %s; task %d starts from its beginning", error, progress.completed + 1
        )
        return None
    _LOGGER.info("resume: continuing inside task %d from %s", progress.completed + 1, path.name)
    module.curves = [dict(record) for record in payload["metrics"]["curves"]]
    module.on_load_checkpoint(payload["loop"])
    return payload, TaskPosition.from_payload(payload["position"])


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


def open_run_dir(run_dir: str | Path, *, text: str, resume: bool, rank: int) -> Path:
    """Rank 0 creates (or, resuming, checks) the folder; other processes never write to it."""
    if rank != 0:
        return Path(run_dir)
    if resume:
        return check_resumable(run_dir, config_text=text)
    folder = prepare_run_dir(run_dir)
    write_text(folder / "config.yaml", text)
    return folder


def logged_step(progress: RunProgress, module: ContinualModule) -> int:
    """The last run step a resumed run's checkpoint had logged (its records and test rows)."""
    return max([progress.log_step, *(int(record["step"]) for record in module.curves)])


def records_sent(
    folder: Path, loggers, progress: RunProgress, module: ContinualModule, *, resume: bool
) -> int:
    """The module's records already in the run's loggers (a resumed CSV log may lack some)."""
    if not resume or "csv" not in loggers:
        return len(module.curves)
    step = logged_step(progress, module)
    return records_logged(folder, module.curves, step=step)
