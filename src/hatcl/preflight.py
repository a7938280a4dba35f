"""Validate, then work: check a whole run configuration before anything is read, built or written.

:func:`preflight` takes the composed configuration and checks every group, key, value and path
(the algorithm's and backbone's options by building them on PyTorch's ``meta`` device, where no
memory is allocated; the optimizer and scheduler options on a one-element stand-in parameter);
it creates nothing. A configuration it accepts starts a run; one it refuses ends with one
``ValueError``/``TypeError`` naming the key, the value and what is valid.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hatcl.data.registries import SOURCES, source_info
from hatcl.preflight_checks import (
    check_folder_path,
    check_optimizer,
    check_plugin_options,
    check_trainer,
    disk_space_warning,
)
from hatcl.training.plan import RunPlan
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
#: Environment variables through which launchers give a process its rank (as Lightning reads them).
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")
#: Constructor arguments hatcl itself sets, not the configuration.
_SET_BY_HATCL = {"backbone": ("input_shape", "masked")}


#: The plan :func:`preflight` returns (:class:`hatcl.training.plan.RunPlan`).
Plan = RunPlan


def preflight(mapping: Mapping[str, Any], *, resolved: str, run_dir: str | None = None) -> Plan:
    """Check the whole configuration ``mapping`` (resolved, plain containers): the run's plan.

    It creates nothing and changes no global state; what it loads on the way (a resumed run's
    checkpoints, an external FWT reference) is in the plan, so that the run loads it no more.

    Args:
        mapping: the resolved configuration (without Hydra's own node).
        resolved: its YAML text.
        run_dir: the run folder chosen by a launcher (a multirun job's folder), instead of
            ``output_dir``.

    Raises:
        ValueError, TypeError, FileNotFoundError: naming the key, the value and what is valid.
    """
    check_keys(mapping, valid=TOP_LEVEL_KEYS, section="")
    check_group_keys(mapping)
    from hatcl.training.experiment import ExperimentConfig, build_algorithm

    config = ExperimentConfig.from_mapping(mapping)
    check_data(config)
    algorithm = build_algorithm(config.algorithm)
    check_plugin_options(mapping.get("algorithm"))
    model = dry_model(config, algorithm=algorithm)
    check_optimizer(config.optimizer)
    check_trainer(config.trainer)
    reference = check_reference(config)
    resume = mapping.get("resume")
    if resume is not None:
        from hatcl.preflight_resume import check_resume

        state, warnings = check_resume(resume, resolved=resolved, model=model, algorithm=algorithm)
        plan = Plan(
            config=config,
            resolved=resolved,
            run_dir=state.folder,
            resumed=state,
            reference=reference,
            warnings=warnings,
        )
    else:
        target = run_dir if run_dir is not None else mapping.get("output_dir")
        if launcher_rank() == 0:
            from hatcl.reporting.run_folder import check_output_dir

            target = check_output_dir(target)
        plan = Plan(config=config, resolved=resolved, run_dir=Path(target), reference=reference)
    space = disk_space_warning(config, model=model, run_dir=plan.run_dir)
    return plan if space is None else replace(plan, warnings=(*plan.warnings, space))


# -- keys -----------------------------------------------------------------------------------------


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


def check_reference(config) -> tuple[float, ...] | None:
    """A ``reference_run`` folder must hold a finished ``independent`` run of the same data.

    Returns its ``b[tau]`` (``None`` without a reference folder).
    """
    reference = config.reference_run
    if reference is None or reference == "auto":
        return None
    if not reference.strip():
        raise ValueError("reference_run='' is empty; give a run folder, auto or null")
    from hatcl.training.reference import external_reference

    return tuple(external_reference(config))


def launcher_rank() -> int:
    """This process's rank as the launcher set it (0 for a single process)."""
    for variable in _RANK_VARIABLES:
        value = os.environ.get(variable)
        if value is not None and value.strip().isdigit():
            return int(value)
    return 0
