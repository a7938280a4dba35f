"""What a run saves: the checkpoint after each task and the in-task one, and its folder.

:mod:`hatcl.training.checkpoint` holds the file format; :mod:`hatcl.training.resume_state` what
a resumed run loads and restores.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L

from hatcl.reporting.run_folder import prepare_run_dir, write_text
from hatcl.training.checkpoint import RunProgress, capture, checkpoint_path, save_checkpoint
from hatcl.training.interrupt import in_task_path
from hatcl.training.loggers import records_logged
from hatcl.training.module import ContinualModule
from hatcl.training.position import TaskPosition


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
    """Rank 0 creates the folder (a resumed one was checked when it was planned); other
    processes never write to it."""
    if rank != 0 or resume:
        return Path(run_dir)
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
