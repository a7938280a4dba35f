"""Typed experiment configuration, built from the Hydra/OmegaConf mapping with clear errors."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hatcl.validation import check_int

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
    loggers: tuple[str, ...] = ("csv", "tensorboard")
    figures: bool = True
    checkpoints: bool = True

    def __post_init__(self) -> None:
        check_int(self.max_epochs, parameter="trainer.max_epochs", low=1)
        check_int(self.batch_size, parameter="trainer.batch_size", low=1)
        check_int(self.eval_batch_size, parameter="trainer.eval_batch_size", low=1)
        check_int(self.log_every_n_steps, parameter="trainer.log_every_n_steps", low=1)
        if self.num_threads is not None:
            check_int(self.num_threads, parameter="trainer.num_threads", low=1)
        _check_loggers(self)
        from hatcl.training.precision import check_precision

        check_precision(precision=self.precision, accelerator=self.accelerator)


def _check_loggers(trainer: TrainerConfig) -> None:
    from hatcl.training.registries import LOGGERS

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
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(items) - known)
    if unknown:
        raise ValueError(
            f"unknown key(s) {', '.join(f'{section}.{k}' for k in unknown)}; "
            f"valid keys of {section}: {', '.join(sorted(known))}"
        )
    return cls(**items)


def _plain(mapping: Mapping[str, Any], *, section: str) -> dict[str, Any]:
    if hasattr(mapping, "_metadata"):  # an OmegaConf node
        from omegaconf import OmegaConf

        mapping = OmegaConf.to_container(mapping, resolve=True)
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{section} must be a mapping of options, got {mapping!r}")
    return dict(mapping)


def flatten_mapping(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``{"a.b": value}`` (lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_mapping(value, f"{name}."))
        else:
            flat[name] = value
    return flat
