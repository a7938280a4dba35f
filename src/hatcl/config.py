"""Typed experiment configuration, built from the Hydra/OmegaConf mapping with clear errors."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hatcl.training.precision import check_precision
from hatcl.training.registries import LOGGERS, LR_SCHEDULERS, OPTIMIZERS
from hatcl.validation import (
    check_bool,
    check_choice,
    check_int,
    check_keys,
    check_number,
)

DEFAULT_RUNS_DIR = "runs"


@dataclass(frozen=True)
class ComponentConfig:
    """A registry entry by ``name`` and the keyword arguments of its constructor."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], *, section: str) -> ComponentConfig:
        """Split ``{"name": ..., **options}``; ``ValueError`` if ``name`` is missing."""
        items = _plain(mapping, section=section)
        if "name" not in items:
            raise ValueError(f"{section} needs a 'name' (e.g. {section}.name=...)")
        name = items.pop("name")
        return cls(name=name, options=items)


@dataclass(frozen=True)
class OptimizerConfig:
    """The optimizer built afresh at the start of every task, and its per-epoch scheduler."""

    name: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    options: dict = field(default_factory=dict)
    scheduler: str | None = None
    scheduler_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        OPTIMIZERS.validate(self.name, parameter="optimizer.name")
        check_number(self.lr, parameter="optimizer.lr", low=0.0, low_inclusive=False)
        check_number(self.weight_decay, parameter="optimizer.weight_decay", low=0.0)
        if self.scheduler is not None:
            LR_SCHEDULERS.validate(self.scheduler, parameter="optimizer.scheduler")
        for key in ("options", "scheduler_options"):
            value = getattr(self, key)
            if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
                raise TypeError(
                    f"optimizer.{key} must be a mapping of keyword options (e.g. "
                    f"optimizer.{key}={{momentum: 0.9}}), got {value!r}"
                )


#: Values of ``trainer.accelerator`` (availability is checked by the preflight).
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "auto")
#: Values of ``trainer.strategy``: Lightning's default or DDP (docs/operations.md).
STRATEGIES = ("auto", "ddp")
#: Values of ``trainer.precision`` (Lightning's names; the short aliases included).
PRECISIONS = (
    "32-true",
    "64-true",
    "16-mixed",
    "bf16-mixed",
    "16-true",
    "bf16-true",
    "32",
    "64",
    "16",
    "bf16",
    32,
    64,
    16,
)
_BOOLEAN_KEYS = ("enable_progress_bar", "deterministic", "figures", "checkpoints", "report")


@dataclass(frozen=True)
class TrainerConfig:
    """How each task is trained (epochs, batches, devices, progress, threads)."""

    max_epochs: int = 10
    batch_size: int = 64
    eval_batch_size: int = 1024
    accelerator: str = "cpu"
    devices: Any = 1
    strategy: str = "auto"
    precision: str = "32-true"
    enable_progress_bar: bool = True
    log_every_n_steps: int = 10
    deterministic: bool = False
    num_threads: int | None = None
    loggers: tuple[str, ...] = ("csv",)
    figures: bool = True
    report: bool = True
    checkpoints: bool = True
    checkpoint_every_n_steps: int | None = None

    def __post_init__(self) -> None:
        check_int(self.max_epochs, parameter="trainer.max_epochs", low=1)
        check_int(self.batch_size, parameter="trainer.batch_size", low=1)
        check_int(self.eval_batch_size, parameter="trainer.eval_batch_size", low=1)
        check_int(self.log_every_n_steps, parameter="trainer.log_every_n_steps", low=1)
        if self.num_threads is not None:
            check_int(self.num_threads, parameter="trainer.num_threads", low=1)
        if self.checkpoint_every_n_steps is not None:
            check_int(
                self.checkpoint_every_n_steps, parameter="trainer.checkpoint_every_n_steps", low=1
            )
        for key in _BOOLEAN_KEYS:
            check_bool(getattr(self, key), parameter=f"trainer.{key}")
        check_choice(self.accelerator, parameter="trainer.accelerator", choices=ACCELERATORS)
        check_choice(self.strategy, parameter="trainer.strategy", choices=STRATEGIES)
        if self.precision not in PRECISIONS:
            names = ", ".join(dict.fromkeys(str(p) for p in PRECISIONS))
            raise ValueError(f"trainer.precision must be one of {names}; got {self.precision!r}")
        if self.precision in ("16-mixed", "16", 16) and self.accelerator == "cpu":
            raise ValueError(
                f"trainer.precision={self.precision!r} (float16 mixed precision) is not supported "
                "with trainer.accelerator=cpu; use bf16-mixed, 32-true or 64-true"
            )
        object.__setattr__(self, "devices", _check_devices(self.devices, self.accelerator))
        _check_loggers(self)
        check_precision(precision=self.precision, accelerator=self.accelerator)


def _check_devices(devices: Any, accelerator: str) -> Any:
    """``auto``, a count >= 1, -1 (every GPU) or a list of GPU indices, as Lightning takes it."""
    valid = (
        "valid: auto or a number of processes >= 1"
        if accelerator == "cpu"
        else "valid: auto, a count >= 1, -1 (all GPUs) or a list of GPU indices such as [0, 1]"
    )
    if devices == "auto":
        return devices
    if isinstance(devices, str) and devices.strip().isdigit():
        devices = int(devices)
    if isinstance(devices, (list, tuple)) and accelerator not in ("cpu", "mps"):
        if devices and all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in devices
        ):
            return list(devices)
    elif isinstance(devices, int) and not isinstance(devices, bool):
        if devices >= 1 or (devices == -1 and accelerator not in ("cpu", "mps")):
            return devices
    raise ValueError(
        f"trainer.devices={devices!r} is not valid with trainer.accelerator={accelerator}; {valid}"
    )


def _check_loggers(trainer: TrainerConfig) -> None:
    loggers = trainer.loggers
    if loggers is None:
        loggers = ()
    if isinstance(loggers, str) or not all(isinstance(name, str) for name in loggers):
        raise TypeError(
            f"trainer.loggers must be a list of logger names, got {loggers!r}; "
            f"valid names: {', '.join(LOGGERS.names())}"
        )
    for name in loggers:
        LOGGERS.validate(name, parameter="trainer.loggers")
    object.__setattr__(trainer, "loggers", tuple(loggers))


def dataclass_from_mapping(cls: type, mapping: Mapping[str, Any] | None, *, section: str) -> Any:
    """Build dataclass ``cls`` from ``mapping``; unknown keys raise ``ValueError`` naming them."""
    items = _plain(mapping or {}, section=section)
    check_keys(items, valid=[f.name for f in dataclasses.fields(cls)], section=section)
    return cls(**items)


def _plain(mapping: Mapping[str, Any], *, section: str) -> dict[str, Any]:
    if hasattr(mapping, "_metadata"):  # an OmegaConf node
        from omegaconf import OmegaConf

        mapping = OmegaConf.to_container(mapping, resolve=True)
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{section} must be a mapping of options, got {mapping!r}")
    return dict(mapping)
