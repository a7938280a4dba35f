"""Optimizers and learning-rate schedulers by name; a fresh optimizer is built for every task.

The option mappings of ``conf/optimizer/*.yaml`` list the known keys with ``null`` values, so that
``optimizer.scheduler_options.step_size=5`` needs no ``+``; a ``null`` means "not set" and is
dropped before the optimizer or scheduler is built.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from hatcl.training.registries import LR_SCHEDULERS, OPTIMIZERS

#: Implementation chosen when ``optimizer.options`` names none (neither ``fused`` nor
#: ``foreach``): torch's fused CPU kernels, 2.7x (Adam, AdamW) and 1.3x (SGD) faster per step
#: than the single-tensor loop on an MLP 784-256-256 with one thread; the parameters agree with
#: the single-tensor path to float32 rounding (max |difference| 4e-8 after 300 Adam steps,
#: ``python benchmarks/optimizers.py``). ``options: {fused: false}`` (on the command line
#: ``+optimizer.options.fused=false``) restores the single-tensor path.
FAST_IMPLEMENTATION: dict[str, dict[str, Any]] = {
    "adam": {"fused": True},
    "adamw": {"fused": True},
    "sgd": {"fused": True},
}


def given_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` without the keys whose value is ``None`` (declared but not set)."""
    return {key: value for key, value in options.items() if value is not None}


def build_optimizer(
    parameters: Iterable[torch.nn.Parameter],
    *,
    name: str,
    lr: float,
    weight_decay: float,
    options: Mapping[str, Any],
) -> torch.optim.Optimizer:
    """Instantiate the optimizer registered as ``name`` with the set (non-null) ``options``;
    fused kernels unless ``options`` say otherwise.

    The fused implementation needs floating-point parameters on a device torch has fused kernels
    for (CPU and CUDA); options naming ``fused`` or ``foreach`` are passed on unchanged.
    """
    key = OPTIMIZERS.validate(name, parameter="optimizer.name")
    optimizer_class = OPTIMIZERS.get(key)
    options = given_options(options)
    options = {**implementation_defaults(key, options), **options}
    try:
        return optimizer_class(list(parameters), lr=lr, weight_decay=weight_decay, **options)
    except TypeError as error:
        raise ValueError(
            f"optimizer {name!r} rejected optimizer.options {dict(options)}: {error}"
        ) from None


def implementation_defaults(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The implementation options added for optimizer ``name`` when ``options`` choose none."""
    if "fused" in options or "foreach" in options:
        return {}
    return dict(FAST_IMPLEMENTATION.get(name, {}))


def build_scheduler(
    optimizer: torch.optim.Optimizer, *, name: str | None, options: Mapping[str, Any]
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Instantiate the scheduler registered as ``name`` (stepped once per epoch), or None.

    Raises:
        ValueError: an option the scheduler requires is unset (named with the override that
            sets it), or the scheduler rejects the options.
    """
    if name is None:
        return None
    scheduler_class = LR_SCHEDULERS.resolve(name, parameter="optimizer.scheduler")
    options = given_options(options)
    check_required_options(scheduler_class, options, name=name)
    try:
        return scheduler_class(optimizer, **options)
    except TypeError as error:
        raise ValueError(
            f"scheduler {name!r} rejected optimizer.scheduler_options {dict(options)}: {error}"
        ) from None


def check_required_options(factory, options: Mapping[str, Any], *, name: str) -> None:
    """Every keyword ``factory`` requires (no default; the optimizer aside) is in ``options``."""
    parameters = inspect.signature(factory).parameters
    missing = [
        key
        for key, parameter in parameters.items()
        if key not in ("self", "optimizer")
        and parameter.default is inspect.Parameter.empty
        and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
        and key not in options
    ]
    if missing:
        needed = " ".join(f"optimizer.scheduler_options.{key}=<value>" for key in missing)
        raise ValueError(
            f"optimizer.scheduler={name} needs optimizer.scheduler_options "
            f"{', '.join(missing)}, which is not set: add {needed}"
        )
