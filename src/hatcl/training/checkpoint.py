"""Checkpoints after every task: state dicts only, written atomically, loaded with weights_only.

A checkpoint ``<run>/checkpoints/task_<t>.ckpt`` holds everything needed to continue after task
``t``: the model (heads, per-task norms, mask buffers), the algorithm's buffers (importances, ...),
the last optimizer and scheduler states, every RNG state, the loop's logging accumulators, the
position in the task sequence and the metrics so far. It contains only tensors and plain
containers, so ``torch.load(path, weights_only=True)`` reads it.
"""

from __future__ import annotations

import os
import random
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hatcl.config import flatten_mapping

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_FORMAT = 1
_NAME = re.compile(r"^task_(\d+)\.ckpt$")


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


def checkpoint_path(run_dir: str | os.PathLike[str], task_id: int) -> Path:
    """``<run_dir>/checkpoints/task_<task_id>.ckpt``."""
    return Path(run_dir) / CHECKPOINT_DIR / f"task_{task_id}.ckpt"


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """The checkpoint of the last completed task in ``run_dir`` (None if there is none)."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return max(found)[1] if found else None


def save_checkpoint(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` with ``torch.save`` atomically and durably.

    The bytes go to a hidden temporary file in the same folder (never named like a
    checkpoint), are flushed and fsynced, and the file is renamed over ``path``; a crash at any
    point leaves either the previous file or the complete new one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            torch.save(dict(payload), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)
    return target


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; ``ValueError`` if it is not one of ours."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{str(path)!r} is not a hatcl checkpoint of format {CHECKPOINT_FORMAT}")
    return payload


def capture(
    *,
    module: torch.nn.Module,
    progress: RunProgress,
    optimizer: Mapping[str, Any] | None,
    scheduler: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The checkpoint payload after ``progress.completed`` tasks."""
    loop: dict[str, Any] = {}
    module.on_save_checkpoint(loop)
    return {
        "format": CHECKPOINT_FORMAT,
        "completed_tasks": progress.completed,
        "model": module.model.state_dict(),
        "algorithm": module.algorithm.state_dict(),
        "optimizer": optimizer,
        "scheduler": scheduler,
        "loop": loop,
        "rng": rng_states(),
        "metrics": {
            "accuracy_matrix": [list(row) for row in progress.matrix],
            "tasks": list(progress.summaries),
            "curves": [dict(record) for record in module.curves],
            "log_step": progress.log_step,
        },
    }


def restore(
    payload: Mapping[str, Any], *, module: torch.nn.Module, num_classes: Sequence[int]
) -> RunProgress:
    """Load ``payload`` into ``module`` (and the RNGs); return the progress it records.

    The per-task structures (heads, per-task norms) of the completed tasks are created first, so
    that the state dict's keys exist; buffers that grow with tasks resize themselves on load.

    Args:
        payload: a checkpoint from :func:`load_checkpoint`.
        module: the freshly built :class:`ContinualModule` of the same configuration.
        num_classes: the number of classes of every task of the run, in task order.
    """
    completed = int(payload["completed_tasks"])
    for task_id in range(1, completed + 1):
        module.model.setup_task(task_id=task_id, num_classes=num_classes[task_id - 1])
    module.model.load_state_dict(payload["model"])
    module.algorithm.load_state_dict(payload["algorithm"])
    module.on_load_checkpoint(payload["loop"])
    metrics = payload["metrics"]
    module.curves = [dict(record) for record in metrics["curves"]]
    set_rng_states(payload["rng"])
    return RunProgress(
        completed=completed,
        matrix=[list(row) for row in metrics["accuracy_matrix"]],
        summaries=list(metrics["tasks"]),
        log_step=int(metrics["log_step"]),
    )


def rng_states() -> dict[str, Any]:
    """Every global RNG state (torch CPU and CUDA, NumPy, Python) as tensors and plain values."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: Mapping[str, Any]) -> None:
    """Restore the RNG states captured by :func:`rng_states`."""
    torch.set_rng_state(states["torch"])
    numpy_state = states["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    python_state = states["python"]
    random.setstate(
        (python_state["version"], tuple(python_state["internal"]), python_state["gauss_next"])
    )
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


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


RESUME_IGNORED_KEYS = ("output_dir", "resume")


def check_resumable(run_dir: str | os.PathLike[str], *, config_text: str) -> Path:
    """Check that ``run_dir`` holds an unfinished run of the same configuration; return it.

    Raises:
        FileNotFoundError: ``run_dir`` or its ``config.yaml`` does not exist.
        ValueError: the run is complete, or its configuration differs from ``config_text`` (the
            message names every differing key; ``output_dir`` and ``resume`` are ignored).
    """
    folder = Path(run_dir)
    saved = folder / "config.yaml"
    if not saved.is_file():
        raise FileNotFoundError(
            f"resume={str(folder)!r} is not a run folder (no config.yaml): pass the folder of "
            "the interrupted run"
        )
    if (folder / "metrics.json").exists():
        raise ValueError(
            f"resume={str(folder)!r} is a finished run (metrics.json exists); nothing to resume"
        )
    differences = config_differences(saved.read_text(encoding="utf-8"), config_text)
    if differences:
        raise ValueError(
            f"resume={str(folder)!r} was run with another configuration; differing keys: "
            f"{'; '.join(differences)}. Pass the same overrides as the interrupted run"
        )
    return folder


def config_differences(saved: str, current: str) -> list[str]:
    """``key (saved X, now Y)`` for every dotted key whose value differs between two YAMLs."""
    import yaml

    before = flatten_mapping(yaml.safe_load(saved) or {})
    after = flatten_mapping(yaml.safe_load(current) or {})
    keys = sorted(
        key
        for key in set(before) | set(after)
        if key.split(".")[0] not in RESUME_IGNORED_KEYS and before.get(key) != after.get(key)
    )
    return [f"{key} (saved {before.get(key)!r}, now {after.get(key)!r})" for key in keys]
