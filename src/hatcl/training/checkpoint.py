"""Checkpoints after every task: state dicts only, tagged and checksummed, written atomically.

A checkpoint ``<run>/checkpoints/task_<t>.ckpt`` holds everything needed to continue after task
``t``: the model (heads, per-task norms, mask buffers), the algorithm's buffers (importances, ...),
the last optimizer and scheduler states, every RNG state, the loop's logging accumulators, the
position in the task sequence and the metrics so far. It contains only tensors and plain
containers.

On disk the payload is serialised with ``torch.save`` and wrapped in an envelope: a format tag,
the format number, the payload's size and SHA-256, and the payload bytes. Reading checks all four
(:func:`load_checkpoint`), so a truncated, empty, overwritten or altered file is named with its
problem instead of failing somewhere inside ``torch.load``; both levels load with
``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hatcl.mappings import flatten_mapping
from hatcl.reporting.run_folder import make_user_file

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_TAG = "hatcl-checkpoint"
CHECKPOINT_FORMAT = 2
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
    found = checkpoints_newest_first(run_dir)
    return found[0] if found else None


def checkpoints_newest_first(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Every ``task_<t>.ckpt`` of ``run_dir``, the last completed task first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [path for _, path in sorted(found, reverse=True)]


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the problem.

    Attributes:
        path: the file.
        problem: what is wrong with it (e.g. ``empty (0 bytes)``, ``checksum mismatch``).
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"checkpoint {str(self.path)!r} {problem}")


def save_checkpoint(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` in its tagged, checksummed envelope, atomically and durably.

    The bytes go to a hidden temporary file in the same folder (never named like a
    checkpoint), are flushed and fsynced, and the file is renamed over ``path``; a crash at any
    point leaves either the previous file or the complete new one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    envelope = _envelope(payload)
    descriptor, temporary = make_user_file(
        f".{target.name}.", folder=target.parent, suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            torch.save(envelope, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)
    return target


def _envelope(payload: Mapping[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(dict(payload), buffer)
    body = buffer.getvalue()
    return {
        "tag": CHECKPOINT_TAG,
        "format": CHECKPOINT_FORMAT,
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "payload": torch.frombuffer(bytearray(body), dtype=torch.uint8),
    }


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and verify a checkpoint; the payload dict, or :class:`CheckpointError` naming it.

    Raises:
        CheckpointError: the file is missing, empty, truncated or not a torch file, carries no
            hatcl tag, has another format, or its payload fails the size or SHA-256 check.
    """
    source = Path(path)
    if not source.is_file():
        raise CheckpointError(source, "does not exist")
    if source.stat().st_size == 0:
        raise CheckpointError(source, "is empty (0 bytes)")
    envelope = _read(source, lambda: torch.load(source, map_location="cpu", weights_only=True))
    body = _verified_body(source, envelope)
    payload = _read(
        source, lambda: torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    )
    if not isinstance(payload, dict):
        raise CheckpointError(source, "holds no checkpoint payload")
    payload["file"] = str(source)
    return payload


def _read(path: Path, load: Any) -> Any:
    try:
        return load()
    except Exception as error:  # torch reports damage as RuntimeError, EOFError, pickle errors
        detail = " ".join(str(error).split())[:160]
        raise CheckpointError(
            path, f"cannot be read: truncated or corrupt ({type(error).__name__}: {detail})"
        ) from None


def _verified_body(path: Path, envelope: Any) -> bytes:
    if not isinstance(envelope, dict) or envelope.get("tag") != CHECKPOINT_TAG:
        raise CheckpointError(path, f"is not a hatcl checkpoint (no {CHECKPOINT_TAG!r} tag)")
    if envelope.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            path,
            f"has format {envelope.get('format')!r}; this hatcl reads format {CHECKPOINT_FORMAT}",
        )
    payload = envelope.get("payload")
    if not isinstance(payload, torch.Tensor) or payload.dtype != torch.uint8:
        raise CheckpointError(path, "holds no payload bytes")
    body = payload.numpy().tobytes()
    if len(body) != envelope.get("size"):
        raise CheckpointError(
            path, f"is damaged: payload of {len(body)} bytes, {envelope.get('size')} written"
        )
    if hashlib.sha256(body).hexdigest() != envelope.get("sha256"):
        raise CheckpointError(path, "is damaged: its payload fails the SHA-256 checksum")
    return body


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
        "identity": identity(module.model, module.algorithm),
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
    path = payload.get("file", "(in memory)")
    check_identity(payload, model=module.model, algorithm=module.algorithm, path=path)
    try:
        module.model.load_state_dict(payload["model"])
        module.algorithm.load_state_dict(payload["algorithm"])
    except RuntimeError as error:  # torch's "Missing key(s)" / "size mismatch" report
        detail = " ".join(str(error).split())[:300]
        raise CheckpointError(path, f"belongs to another run: {detail}") from None
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
    differences = config_differences(read_config_text(saved), config_text)
    if differences:
        raise ValueError(
            f"resume={str(folder)!r} was run with another configuration; differing keys: "
            f"{'; '.join(differences)}. Pass the same overrides as the interrupted run"
        )
    return folder


def read_config_text(path: Path) -> str:
    """The text of a run folder's ``config.yaml``; ``ValueError`` naming it if it is no mapping."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        loaded = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        detail = " ".join(str(error).split())[:200]
        raise ValueError(
            f"{str(path)!r} cannot be read as a hatcl configuration ({detail}); the run folder's "
            "config.yaml is damaged: restore it or start a new run"
        ) from None
    if not isinstance(loaded, dict):
        raise ValueError(
            f"{str(path)!r} is not a hatcl configuration (it holds {type(loaded).__name__}, not a "
            "mapping of keys); the run folder's config.yaml is damaged: restore it or start a "
            "new run"
        )
    return text


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
