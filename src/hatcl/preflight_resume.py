"""Preflight of ``resume=``: the run folder, its checkpoints (loaded once), warnings."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def check_resume(resume: Any, *, resolved: str, model, algorithm):
    """Check the folder of ``resume=`` and load its checkpoints, once.

    Returns the :class:`hatcl.training.resume.ResumeState` the run restores and one warning per
    damaged checkpoint (what is used instead).
    """
    from hatcl.training.resume_state import open_resume

    if not isinstance(resume, str) or not resume.strip():
        raise ValueError(f"resume={resume!r} must name the folder of an interrupted run")
    state = open_resume(resume, config_text=resolved, model=model, algorithm=algorithm)
    fallback = None if state.last_task is None else Path(state.last_task["file"])
    warnings = tuple(_damage_note(error, fallback=fallback) for error in state.damaged)
    return state, warnings


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


def print_warnings(plan) -> None:
    """Each warning of ``plan`` on stderr, one paragraph each."""
    for note in plan.warnings:
        print(f"hatcl: warning: {note}", file=sys.stderr)
