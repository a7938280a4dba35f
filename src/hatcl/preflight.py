"""Validate, then work: check a whole run configuration before anything is read, built or written.

:func:`preflight` takes the composed configuration and checks every group, key, value and path
(the algorithm's and backbone's options by building them on PyTorch's ``meta`` device, where no
memory is allocated; the optimizer and scheduler options on a one-element stand-in parameter);
it creates nothing. A configuration it accepts starts a run; one it refuses ends with one
``ValueError``/``TypeError`` naming the key, the value and what is valid.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hatcl.data.registries import SOURCES, source_info
from hatcl.validation import check_keys

#: The name of a user's network (``backbone=custom``) and task sequence (``data=custom``).
CUSTOM = "custom"
#: Top-level keys of the root configuration (``conf/config.yaml``); groups are checked on their own.
TOP_LEVEL_KEYS = (
    "algorithm",
    "backbone",
    "data",
    "optimizer",
    "trainer",
    "seed",
    "head",
    "cil",
    "reference_run",
    "output_dir",
    "resume",
)
#: Packages a logger needs beyond the core dependencies (any one of them).
LOGGER_PACKAGES: dict[str, tuple[str, ...]] = {
    "tensorboard": ("tensorboard", "tensorboardX"),
    "wandb": ("wandb",),
    "mlflow": ("mlflow",),
}
#: Environment variables through which launchers give a process its rank (as Lightning reads them).
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")
#: Constructor arguments hatcl itself sets, not the configuration.
_SET_BY_HATCL = {"backbone": ("input_shape", "masked")}


@dataclass(frozen=True)
class Plan:
    """A checked run: what :func:`hatcl.training.runner.run_experiment` is called with.

    Attributes:
        config: the typed configuration.
        resolved: the resolved configuration as YAML (saved as ``config.yaml``).
        run_dir: the run folder (``resume`` or ``output_dir``).
        resume: whether the run continues the unfinished run in ``run_dir``.
        warnings: what the user should know before the run starts (e.g. a damaged checkpoint
            that will not be used).
        damaged: checkpoints newer than the one resumed from that cannot be used; they are
            renamed to ``<name>.damaged`` when the run starts (:func:`set_aside_damaged`).
    """

    config: Any
    resolved: str
    run_dir: Path
    resume: bool
    warnings: tuple[str, ...] = field(default_factory=tuple)
    damaged: tuple[Path, ...] = field(default_factory=tuple)


def preflight(mapping: Mapping[str, Any], *, resolved: str, run_dir: str | None = None) -> Plan:
    """Check the whole configuration ``mapping`` (resolved, plain containers); create nothing.

    Args:
        mapping: the resolved configuration (without Hydra's own node).
        resolved: its YAML text.
        run_dir: the run folder chosen by a launcher (a multirun job's folder), instead of
            ``output_dir``.

    Raises:
        ValueError, TypeError, FileNotFoundError: naming the key, the value and what is valid.
    """
    check_keys(mapping, valid=TOP_LEVEL_KEYS, section="")
    register_import_paths(mapping)
    check_group_keys(mapping)
    from hatcl.training.experiment import ExperimentConfig, build_algorithm

    config = ExperimentConfig.from_mapping(mapping)
    check_data(config)
    algorithm = build_algorithm(config.algorithm)
    model = dry_model(config, algorithm=algorithm)
    check_optimizer(config.optimizer)
    check_trainer(config.trainer)
    check_reference(config)
    resume = mapping.get("resume")
    if resume is not None:
        return _resume_plan(config, resolved, resume, model=model, algorithm=algorithm)
    target = run_dir if run_dir is not None else mapping.get("output_dir")
    if launcher_rank() == 0:
        from hatcl.reporting.run_folder import check_output_dir

        target = check_output_dir(target)
    return Plan(config=config, resolved=resolved, run_dir=Path(target), resume=False)


# -- keys -----------------------------------------------------------------------------------------


def register_import_paths(mapping: Mapping[str, Any]) -> None:
    """Register ``algorithm.importance_type=package.module:NAME`` (a user's measure) by its path.

    The object must be a :class:`hatcl.importance.base.ImportanceMeasure`; it is registered
    under the import path itself, so the configuration (and ``config.yaml``) names it as given.
    """
    node = mapping.get("algorithm")
    value = node.get("importance_type") if isinstance(node, Mapping) else None
    if not isinstance(value, str) or ":" not in value:
        return
    from hatcl.importance.base import ImportanceMeasure
    from hatcl.importance.registry import IMPORTANCE_TYPES

    if value not in IMPORTANCE_TYPES:
        module_name, _, attribute = value.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ValueError(
                f"algorithm.importance_type={value!r}: cannot import module {module_name!r} "
                f"({error}); is its folder on PYTHONPATH (or the package installed)?"
            ) from None
        measure = getattr(module, attribute, None)
        if not isinstance(measure, ImportanceMeasure):
            raise ValueError(
                f"algorithm.importance_type={value!r} is a {type(measure).__name__}, not an "
                "ImportanceMeasure (hatcl.importance.base): see docs/extending.md"
            )
        IMPORTANCE_TYPES.add(value, value, summary="a measure given by import path")


def check_group_keys(mapping: Mapping[str, Any]) -> None:
    """Every key of every group must be one its component accepts (closest match named)."""
    for group in ("algorithm", "backbone"):
        node = mapping.get(group)
        if isinstance(node, Mapping) and isinstance(node.get("name"), str):
            valid = component_keys(group, node["name"])
            if valid is not None:
                check_keys(node, valid=valid, section=group)
    for group in ("data", "optimizer", "trainer"):
        node = mapping.get(group)
        if isinstance(node, Mapping):
            check_keys(node, valid=group_keys(group, node) or [], section=group)


def group_keys(group: str, node: Mapping[str, Any] | None = None) -> list[str] | None:
    """The valid keys of a configuration group (``None`` if they cannot be known)."""
    if group == "":
        return list(TOP_LEVEL_KEYS)
    if group in ("algorithm", "backbone"):
        name = (node or {}).get("name")
        return component_keys(group, name) if isinstance(name, str) else None
    from hatcl.config import OptimizerConfig, TrainerConfig

    classes = {"data": _data_class(node), "optimizer": OptimizerConfig, "trainer": TrainerConfig}
    return [f.name for f in fields(classes[group])] if group in classes else None


def _data_class(node: Mapping[str, Any] | None) -> type:
    """The data section's dataclass: a user's task sequence (``source: custom``) or a source."""
    if (node or {}).get("source") == CUSTOM:
        from hatcl.data.sources.custom import CustomDataConfig

        return CustomDataConfig
    from hatcl.data.base import DataConfig

    return DataConfig


def component_keys(group: str, name: str) -> list[str] | None:
    """``name`` plus the keyword options of the registered algorithm or backbone ``name``."""
    registry = _registry(group)
    if name not in registry:
        return None  # the unknown name itself is reported by the registry
    try:
        parameters = inspect.signature(registry.get(name)).parameters
    except (TypeError, ValueError):  # pragma: no cover - a factory without a signature
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    hidden = _SET_BY_HATCL.get(group, ())
    return ["name", *(p for p in parameters if p != "self" and p not in hidden)]


def _registry(group: str):
    if group == "algorithm":
        from hatcl.algorithms.registries import ALGORITHMS

        return ALGORITHMS
    from hatcl.backbones.registries import BACKBONES

    return BACKBONES


# -- data, model, optimizer, trainer --------------------------------------------------------------


def check_data(config) -> None:
    """The data options (the data package's own checks) and the paths they name."""
    if config.data.source != CUSTOM:  # a user's task sequence is checked when it is built
        from hatcl.data.base import validate_config

        validate_config(config.data, seed=config.seed)
    for key in ("root", "cache_dir"):
        value = getattr(config.data, key)
        if value is not None:
            check_folder_path(value, parameter=f"data.{key}", writable=key == "cache_dir")


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


def dry_model(config, *, algorithm):
    """Build the configured model on the ``meta`` device (checks every backbone/head option).

    Returns ``None`` for a data source whose input shape is not known without loading it, and
    for a user's network (``backbone=custom``: its factory is the user's code, run once).
    """
    shape = source_info(config.data.source).input_shape if config.data.source in SOURCES else None
    if shape is None or config.backbone.name == CUSTOM:  # a user's network is built once, later
        return None
    import torch

    from hatcl.training.experiment import build_model

    with torch.device("meta"):
        return build_model(config, data=SimpleNamespace(input_shape=shape), algorithm=algorithm)


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


def check_reference(config) -> None:
    """A ``reference_run`` folder must hold a finished ``independent`` run of the same data."""
    reference = config.reference_run
    if reference is None or reference == "auto":
        return
    if not reference.strip():
        raise ValueError("reference_run='' is empty; give a run folder, auto or null")
    from hatcl.training.reference import external_reference

    external_reference(config)


def launcher_rank() -> int:
    """This process's rank as the launcher set it (0 for a single process)."""
    for variable in _RANK_VARIABLES:
        value = os.environ.get(variable)
        if value is not None and value.strip().isdigit():
            return int(value)
    return 0


# -- resume ---------------------------------------------------------------------------------------


def _resume_plan(config, resolved: str, resume: Any, *, model, algorithm) -> Plan:
    from hatcl.training.checkpoint import check_resumable

    if not isinstance(resume, str) or not resume.strip():
        raise ValueError(f"resume={resume!r} must name the folder of an interrupted run")
    folder = check_resumable(resume, config_text=resolved)
    damaged = check_checkpoints(folder, model=model, algorithm=algorithm)
    fallback = _first_intact(folder, damaged)
    return Plan(
        config=config,
        resolved=resolved,
        run_dir=folder,
        resume=True,
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


def set_aside_damaged(plan: Plan) -> None:
    """Rename the damaged checkpoints of ``plan`` to ``<name>.damaged`` (kept, never used)."""
    for path in plan.damaged:
        if path.exists():
            path.rename(path.with_name(f"{path.name}.damaged"))


def print_warnings(plan: Plan) -> None:
    """Each warning of ``plan`` on stderr, one paragraph each."""
    for note in plan.warnings:
        print(f"hatcl: warning: {note}", file=sys.stderr)
