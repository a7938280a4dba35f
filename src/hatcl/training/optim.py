"""Optimizers and learning-rate schedulers by name; a fresh optimizer is built for every task."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from hatcl.training.registries import LR_SCHEDULERS, OPTIMIZERS


def build_optimizer(
    parameters: Iterable[torch.nn.Parameter],
    *,
    name: str,
    lr: float,
    weight_decay: float,
    options: Mapping[str, Any],
) -> torch.optim.Optimizer:
    """Instantiate the optimizer registered as ``name``."""
    optimizer_class = OPTIMIZERS.get(OPTIMIZERS.validate(name, parameter="optimizer.name"))
    try:
        return optimizer_class(list(parameters), lr=lr, weight_decay=weight_decay, **options)
    except TypeError as error:
        raise ValueError(
            f"optimizer {name!r} rejected optimizer.options {dict(options)}: {error}"
        ) from None


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
