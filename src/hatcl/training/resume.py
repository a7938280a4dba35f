"""A run's folder and its logs across a resume: open the folder, count what was logged.

The checkpoints a run saves and restores are :mod:`hatcl.training.resume_state`; their file
format :mod:`hatcl.training.checkpoint`.
"""

from __future__ import annotations

from pathlib import Path

from hatcl.reporting.run_folder import prepare_run_dir, write_text
from hatcl.training.checkpoint import RunProgress
from hatcl.training.loggers import records_logged
from hatcl.training.module import ContinualModule


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
