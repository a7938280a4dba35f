"""Checkpoints after every task: state dicts only, tagged and checksummed, written atomically.

A checkpoint ``<run>/checkpoints/task_<t>.ckpt`` holds everything needed to continue after task
``t``: the model (heads, per-task norms, mask buffers), the algorithm's buffers (importances, ...),
the last optimizer and scheduler states, every RNG state, the loop's logging accumulators, the
position in the task sequence and the metrics so far. It contains only tensors and plain
containers.

On disk the payload is wrapped in the tagged, checksummed envelope of
:mod:`hatcl.reporting.checkpoint_file` (which also reads and verifies it: reports read run folders
below ``training/``); the names it defines are re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hatcl.reporting.checkpoint_file import (
    CHECKPOINT_DIR,
    CHECKPOINT_FORMAT,
    CHECKPOINT_TAG,
    CheckpointError,
    checkpoint_envelope,
    checkpoint_path,
    checkpoints_newest_first,
    latest_checkpoint,
    load_checkpoint,
)
from hatcl.reporting.run_folder import make_user_file
from hatcl.training.interrupt import WriteFailed
from hatcl.training.rng_state import rng_states, set_rng_states


@dataclass
class RunProgress:
    """What the task loop has produced so far (restored from a checkpoint on resume).

    Attributes:
        completed: the number of finished tasks (the next task is ``completed + 1``).
        matrix: accuracy matrix rows of the finished tasks.
        summaries: per-task summaries (``tasks.json``).
        log_step: the run-wide logger step reached (one step axis across tasks).
    """

    completed: int = 0
    matrix: list[list[float]] = field(default_factory=list)
    summaries: list[dict] = field(default_factory=list)
    log_step: int = 0


def save_checkpoint(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` in its tagged, checksummed envelope, atomically and durably.

    The bytes go to a hidden temporary file in the same folder (never named like a
    checkpoint), are flushed and fsynced, and the file is renamed over ``path``; a crash at any
    point leaves either the previous file or the complete new one.

    Raises:
        WriteFailed: the file could not be written (its cause, e.g. no space left on device);
            the temporary file is removed and an earlier file at ``path`` is left intact.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    envelope = checkpoint_envelope(payload)
    descriptor, temporary = make_user_file(
        f".{target.name}.", folder=target.parent, suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            torch.save(envelope, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except (OSError, RuntimeError) as error:  # torch reports a failed write as RuntimeError
        Path(temporary).unlink(missing_ok=True)
        raise WriteFailed.from_error(error, path=target) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)
    return target


def capture(
    *,
    module: torch.nn.Module,
    progress: RunProgress,
    optimizer: Mapping[str, Any] | None,
    scheduler: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The checkpoint payload after ``progress.completed`` tasks."""
    return {
        "format": CHECKPOINT_FORMAT,
        "identity": identity(module.model, module.algorithm),
        "completed_tasks": progress.completed,
        "model": module.model.state_dict(),
        "algorithm": module.algorithm.state_dict(),
        "optimizer": optimizer,
        "scheduler": scheduler,
        "loop": module.loop_state(),
        "rng": rng_states(),
        "metrics": {
            "accuracy_matrix": [list(row) for row in progress.matrix],
            "tasks": list(progress.summaries),
            "curves": [dict(record) for record in module.curves],
            "log_step": progress.log_step,
        },
    }


def restore(
    payload: Mapping[str, Any],
    *,
    module: torch.nn.Module,
    num_classes: Sequence[int],
    identity_checked: bool = False,
) -> RunProgress:
    """Load ``payload`` into ``module`` (and the RNGs); return the progress it records.

    The per-task structures (heads, per-task norms) of the completed tasks are created first, so
    that the state dict's keys exist; buffers that grow with tasks resize themselves on load.

    Args:
        payload: a checkpoint from :func:`load_checkpoint`.
        module: the freshly built :class:`ContinualModule` of the same configuration.
        num_classes: the number of classes of every task of the run, in task order.
        identity_checked: the payload's identity was checked against this configuration's
            model already (by the run's preflight); else it is checked here.
    """
    completed = int(payload["completed_tasks"])
    for task_id in range(1, completed + 1):
        module.model.setup_task(task_id=task_id, num_classes=num_classes[task_id - 1])
    path = payload.get("file", "(in memory)")
    if not identity_checked:
        check_identity(payload, model=module.model, algorithm=module.algorithm, path=path)
    try:
        module.model.load_state_dict(payload["model"])
        module.algorithm.load_state_dict(payload["algorithm"])
    except RuntimeError as error:  # torch's "Missing key(s)" / "size mismatch" report
        detail = " ".join(str(error).split())[:300]
        raise CheckpointError(path, f"belongs to another run: {detail}") from None
    module.load_loop_state(payload["loop"])
    metrics = payload["metrics"]
    module.curves = [dict(record) for record in metrics["curves"]]
    set_rng_states(payload["rng"])
    return RunProgress(
        completed=completed,
        matrix=[list(row) for row in metrics["accuracy_matrix"]],
        summaries=list(metrics["tasks"]),
        log_step=int(metrics["log_step"]),
    )


def identity(model: torch.nn.Module, algorithm: torch.nn.Module) -> dict[str, Any]:
    """What a checkpoint must match to be loaded: the algorithm and the model's parameter shapes.

    Buffers are left out: per-task buffers (masks, task ids) grow with the tasks trained.
    """
    return {
        "algorithm": type(algorithm).__name__,
        "shapes": {key: list(value.shape) for key, value in model.named_parameters()},
    }


def check_identity(
    payload: Mapping[str, Any],
    *,
    model: torch.nn.Module,
    algorithm: torch.nn.Module,
    path: str | os.PathLike[str],
) -> None:
    """Refuse a checkpoint of another algorithm or model shape (``CheckpointError`` naming both).

    Every parameter of ``model`` must exist in the checkpoint with the same shape; the checkpoint
    may hold more (the heads of tasks ``model`` has not set up yet).
    """
    saved = payload.get("identity")
    if not isinstance(saved, Mapping):
        raise CheckpointError(path, "records no algorithm or model shapes (not from this hatcl)")
    ours = identity(model, algorithm)
    if saved.get("algorithm") != ours["algorithm"]:
        raise CheckpointError(
            path,
            f"belongs to another run: it was written by algorithm {saved.get('algorithm')}, this "
            f"run uses {ours['algorithm']}",
        )
    shapes = saved.get("shapes") or {}
    mismatched = [
        f"{key} (saved {shapes.get(key, 'absent')}, now {shape})"
        for key, shape in ours["shapes"].items()
        if list(shapes.get(key, [-1])) != shape
    ]
    if mismatched:
        shown = "; ".join(mismatched[:3]) + ("; ..." if len(mismatched) > 3 else "")
        raise CheckpointError(
            path, f"belongs to another run: its model has other tensor shapes: {shown}"
        )


def _fsync_folder(folder: Path) -> None:
    """Persist the rename itself (where the platform allows opening a folder)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


__all__ = [
    "CHECKPOINT_DIR",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_TAG",
    "CheckpointError",
    "checkpoint_path",
    "checkpoints_newest_first",
    "latest_checkpoint",
    "load_checkpoint",
]
