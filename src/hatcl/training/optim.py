"""Optimizers and learning-rate schedulers by name; a fresh optimizer is built for every task."""

from __future__ import annotations

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


def build_optimizer(
    parameters: Iterable[torch.nn.Parameter],
    *,
    name: str,
    lr: float,
    weight_decay: float,
    options: Mapping[str, Any],
) -> torch.optim.Optimizer:
    """Instantiate the optimizer registered as ``name`` (fused kernels unless ``options`` say).

    The fused implementation needs floating-point parameters on a device torch has fused kernels
    for (CPU and CUDA); options naming ``fused`` or ``foreach`` are passed on unchanged.
    """
    key = OPTIMIZERS.validate(name, parameter="optimizer.name")
    optimizer_class = OPTIMIZERS.get(key)
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
    """Instantiate the scheduler registered as ``name`` (stepped once per epoch), or None."""
    if name is None:
        return None
    scheduler_class = LR_SCHEDULERS.get(
        LR_SCHEDULERS.validate(name, parameter="optimizer.scheduler")
    )
    try:
        return scheduler_class(optimizer, **options)
    except TypeError as error:
        raise ValueError(
            f"scheduler {name!r} rejected optimizer.scheduler_options {dict(options)}: {error}"
        ) from None
