"""Checks of preflight that need no configuration context: paths, optimizer, trainer, plugins.

Each takes one part of the typed configuration and raises ``ValueError`` naming the key, the
value and what is valid; :func:`disk_space_warning` returns a warning instead.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hatcl.validation import check_keys

#: Packages a logger needs beyond the core dependencies (any one of them).
LOGGER_PACKAGES: dict[str, tuple[str, ...]] = {
    "tensorboard": ("tensorboard", "tensorboardX"),
    "wandb": ("wandb",),
    "mlflow": ("mlflow",),
}


def check_folder_path(value: str, *, parameter: str, writable: bool) -> Path:
    """A folder that exists or can be created (nothing on its way is a file); creates nothing."""
    if not value.strip():
        raise ValueError(f"{parameter}={value!r} is empty; give a folder path or null")
    path = Path(value).expanduser()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        what = "is a file" if existing == path else f"lies below the file {str(existing)!r}"
        raise ValueError(f"{parameter}={value!r} {what}; it must name a folder")
    if writable and not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{parameter}={value!r} is not writable (no permission in {existing})")
    return path


def check_optimizer(optimizer) -> None:
    """Build the optimizer and scheduler on a stand-in parameter: options and values checked."""
    import torch

    from hatcl.training.optim import build_optimizer, build_scheduler, given_options
    from hatcl.training.registries import LR_SCHEDULERS, OPTIMIZERS

    options = given_options(optimizer.options)  # a null option is declared, not set
    _check_option_keys(OPTIMIZERS.get(optimizer.name), options, "optimizer.options")
    if optimizer.scheduler is not None:
        scheduler = LR_SCHEDULERS.get(optimizer.scheduler)
        scheduler_options = given_options(optimizer.scheduler_options)
        _check_option_keys(scheduler, scheduler_options, "optimizer.scheduler_options")
    parameter = torch.nn.Parameter(torch.zeros(1))
    built = _trial(
        "optimizer.options",
        optimizer.options,
        lambda: build_optimizer(
            [parameter],
            name=optimizer.name,
            lr=optimizer.lr,
            weight_decay=optimizer.weight_decay,
            options=optimizer.options,
        ),
    )
    _trial(
        "optimizer.scheduler_options",
        optimizer.scheduler_options,
        lambda: build_scheduler(
            built, name=optimizer.scheduler, options=optimizer.scheduler_options
        ),
    )


def _check_option_keys(factory, options: Mapping[str, Any], section: str) -> None:
    """Keys of ``options`` must be keyword arguments of ``factory`` (set by hatcl ones excluded)."""
    parameters = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    hatcl_sets = ("self", "params", "optimizer", "lr", "weight_decay")
    valid = [name for name in parameters if name not in hatcl_sets]
    check_keys(options, valid=valid, section=section)


def _trial(parameter: str, options: Mapping[str, Any], build):
    try:
        return build()
    except (TypeError, ValueError) as error:
        message = " ".join(str(error).split())
        if parameter in message:
            raise ValueError(message) from None
        raise ValueError(f"{parameter}={dict(options)!r} is not valid: {message}") from None


def check_trainer(trainer) -> None:
    """The accelerator and devices exist on this machine; the loggers' packages are installed."""
    import torch

    accelerator, devices = trainer.accelerator, trainer.devices
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"trainer.accelerator={accelerator} but no CUDA GPU is available on this machine "
                "(torch.cuda.is_available() is False); valid here: cpu (or auto)"
            )
        count = torch.cuda.device_count()
        wanted = devices if isinstance(devices, list) else []
        if (isinstance(devices, int) and devices > count) or any(i >= count for i in wanted):
            raise ValueError(
                f"trainer.devices={devices!r} asks for GPUs this machine does not have "
                f"({count} visible); valid: 1..{count}, -1 (all), auto or indices 0..{count - 1}"
            )
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            "trainer.accelerator=mps but Apple's MPS backend is not available on this machine; "
            "valid here: cpu (or auto)"
        )
    check_logger_packages(trainer.loggers)


def check_logger_packages(loggers) -> None:
    """Every logger's extra package is installed (tensorboard is not a core dependency)."""
    for name in loggers:
        packages = LOGGER_PACKAGES.get(name, ())
        if packages and not any(importlib.util.find_spec(p) for p in packages):
            raise ValueError(
                f"trainer.loggers entry {name!r} needs the package {packages[0]}, which is not "
                f"installed: pip install {packages[0]} (or hatcl[extras]), or leave {name!r} out, "
                "e.g. trainer.loggers=[csv]"
            )


def check_plugin_options(node: Any) -> None:
    """Every importance plugin's options in ``algorithm`` are valid, whatever measure is chosen.

    A plugin (e.g. the stochastic gates') validates its options when it is built; it is built
    here from the options the configuration gives it, so that a wrong value is refused even when
    another importance type is used. Only the measures that declare a plugin are imported (the
    attribution measures import Captum and matplotlib: about a second of start-up).
    """
    if not isinstance(node, Mapping):
        return
    from hatcl.importance.registry import IMPORTANCE_TYPES, declares_plugin

    for name in IMPORTANCE_TYPES.names():
        if not declares_plugin(name):
            continue
        measure = IMPORTANCE_TYPES.get(name)
        options = getattr(measure, "plugin_options", ())
        if getattr(measure, "plugin", None) is None or not all(o in node for o in options):
            continue
        measure.plugin(**{option: node[option] for option in options})


#: What a checkpoint holds per parameter element, in parameter sizes: the model, the algorithm's
#: buffers (masks, importances) and the optimizer's state (Adam: two moments).
CHECKPOINT_COPIES = 4


def disk_space_warning(config, *, model, run_dir: Path) -> str | None:
    """A warning if the run folder's disk has less than twice the run's expected checkpoints.

    The expected size is ``CHECKPOINT_COPIES`` times the model's parameter bytes per task
    checkpoint, times the number of tasks (every task's checkpoint is kept). ``None`` when the
    size cannot be known before the run (a user's network or data) or there is room.
    """
    if model is None or not config.trainer.checkpoints:
        return None
    import shutil

    per_checkpoint = CHECKPOINT_COPIES * sum(
        p.numel() * p.element_size() for p in model.parameters()
    )
    expected = per_checkpoint * max(int(getattr(config.data, "num_tasks", 1) or 1), 1)
    existing = Path(run_dir).expanduser().absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if free >= 2 * expected:
        return None
    return (
        f"only {_size(free)} free on the disk of {str(run_dir)!r}; the run's checkpoints take "
        f"about {_size(expected)} ({_size(per_checkpoint)} per task); free space or choose "
        "another output_dir, or a write will fail mid-run (the run then stops and can be resumed)"
    )


def _size(count: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} bytes"  # pragma: no cover - unreachable
