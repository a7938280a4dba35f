"""Preflight of ``resume=``: the run folder, its checkpoints (damaged ones set aside), warnings."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ResumeCheck:
    """A checked ``resume=`` folder.

    Attributes:
        folder: the run folder to continue.
        warnings: one note per damaged checkpoint (what is used instead).
        damaged: the damaged checkpoints, renamed to ``<name>.damaged`` when the run starts.
    """

    folder: Path
    warnings: tuple[str, ...]
    damaged: tuple[Path, ...]


def check_resume(resume: Any, *, resolved: str, model, algorithm) -> ResumeCheck:
    """Check the folder of ``resume=``: an unfinished run of ``resolved``, usable checkpoints."""
    from hatcl.training.resume_check import check_resumable

    if not isinstance(resume, str) or not resume.strip():
        raise ValueError(f"resume={resume!r} must name the folder of an interrupted run")
    folder = check_resumable(resume, config_text=resolved)
    damaged = check_checkpoints(folder, model=model, algorithm=algorithm)
    fallback = _first_intact(folder, damaged)
    return ResumeCheck(
        folder=folder,
        warnings=tuple(_damage_note(error, fallback=fallback) for error in damaged),
        damaged=tuple(error.path for error in damaged),
    )


def _first_intact(folder: Path, damaged) -> Path | None:
    from hatcl.training.checkpoint import checkpoints_newest_first

    bad = {error.path for error in damaged}
    return next((p for p in checkpoints_newest_first(folder) if p not in bad), None)


def check_checkpoints(folder: Path, *, model, algorithm) -> list:
    """Find the newest intact checkpoint and refuse it if it is foreign; list the damaged ones.

    Returns the :class:`~hatcl.training.checkpoint.CheckpointError` of every checkpoint newer
    than the newest intact one (all of them if none is intact).

    Raises:
        CheckpointError: the newest intact checkpoint belongs to another algorithm or model.
    """
    from hatcl.training.checkpoint import (
        CheckpointError,
        check_identity,
        checkpoints_newest_first,
        load_checkpoint,
    )

    damaged: list[CheckpointError] = []
    completed = 0
    for path in checkpoints_newest_first(folder):
        try:
            payload = load_checkpoint(path)
        except CheckpointError as error:
            damaged.append(error)
            continue
        if model is not None:
            check_identity(payload, model=model, algorithm=algorithm, path=path)
        completed = int(payload.get("completed_tasks", 0))
        break
    from hatcl.training.interrupt import in_task_path

    in_task = in_task_path(folder, completed + 1)
    if in_task.exists():
        try:
            payload = load_checkpoint(in_task)
        except CheckpointError as error:
            damaged.append(error)
        else:
            if model is not None:
                check_identity(payload, model=model, algorithm=algorithm, path=in_task)
    return damaged


def _damage_note(error, *, fallback: Path | None) -> str:
    task = error.path.stem.removeprefix("task_")
    if error.path.name.startswith("in_task_"):
        task = error.path.stem.removeprefix("in_task_")
        return (
            f"{error}; it is renamed to {error.path.name}.damaged and task {task} is trained "
            "again from its beginning"
        )
    if fallback is None:
        used = "no intact checkpoint is left: the run starts again at task 1"
    else:
        done = fallback.stem.removeprefix("task_")
        used = (
            f"resuming from {fallback.name} instead: the tasks after task {done} (task {task} "
            "included) will be trained again"
        )
    return f"{error}; it is renamed to {error.path.name}.damaged and {used}"


def set_aside_damaged(plan) -> None:
    """Rename the damaged checkpoints of ``plan`` to ``<name>.damaged`` (kept, never used)."""
    for path in plan.damaged:
        if path.exists():
            path.rename(path.with_name(f"{path.name}.damaged"))


def print_warnings(plan) -> None:
    """Each warning of ``plan`` on stderr, one paragraph each."""
    for note in plan.warnings:
        print(f"hatcl: warning: {note}", file=sys.stderr)
