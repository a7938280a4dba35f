"""The data configuration (``conf/data/*.yaml``) and its checks, run before any data is loaded.

:class:`DataConfig` mirrors the keys of the data configs; :func:`validate_config` checks every
key (type, range, which scenario it applies to) and names what is valid. The builder,
:func:`hatcl.data.base.build_continual_data`, calls it first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from hatcl.data.registries import AUGMENTATIONS, SCENARIOS, SOURCES, source_info
from hatcl.validation import check_bool, check_fraction, check_int, check_number

__all__ = ["DataConfig", "validate_config"]


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """What data to train on; mirrors the keys of ``conf/data/*.yaml``.

    Attributes:
        source: a ``SOURCES`` name.
        scenario: a ``SCENARIOS`` name.
        num_tasks: number of tasks (>= 1; ``split`` needs at most one task per class).
        val_fraction: fraction of each task's training set held out for validation, in [0, 1).
        root: directory holding the dataset files (IDX / CIFAR); ``None`` searches the defaults
            (``~/.cache/hatcl/data/<source>`` and, for Fashion-MNIST, the Debian package's path).
        class_order: ``split`` only: explicit order of the (distinct) classes; the first group
            of classes forms task 1 and so on. A subset of the classes is allowed.
        shuffle_classes: ``split``: without ``class_order``, shuffle the classes with a seed
            derived from the experiment seed (otherwise natural order 0..C-1).
        permute_first_task: ``permuted``: permute task 1 too (otherwise task 1 is the original).
        angles: ``rotated`` only: one angle in degrees per task.
        max_angle: ``rotated``: without ``angles``, task t gets ``max_angle * (t - 1) / num_tasks``
            (evenly spaced in ``[0, max_angle)``).
        train_subset: cap on the training pool (train + validation) per task, seeded.
        test_subset: cap on the test samples per task, seeded.
        cache_dir: directory of an on-disk cache of the decoded source tensors.
        download: allow downloading missing files from the official source (checksums verified).
        augment: ``AUGMENTATIONS`` names applied in order to training batches (``crop``,
            ``flip``); validation and test batches are never augmented.
        crop_padding: zero pixels added per side before ``crop``.
    """

    source: str = "digits"
    scenario: str = "permuted"
    num_tasks: int = 5
    val_fraction: float = 0.1
    root: str | None = None
    class_order: tuple[int, ...] | None = None
    shuffle_classes: bool = False
    permute_first_task: bool = True
    angles: tuple[float, ...] | None = None
    max_angle: float = 180.0
    train_subset: int | None = None
    test_subset: int | None = None
    cache_dir: str | None = None
    download: bool = False
    augment: tuple[str, ...] = ()
    crop_padding: int = 4

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> DataConfig:
        """Build a config from a dict or OmegaConf-like mapping (lists become tuples).

        Raises:
            TypeError: if ``mapping`` is not a mapping.
            ValueError: naming unknown keys and listing the valid ones.
        """
        if not isinstance(mapping, Mapping) and not hasattr(mapping, "items"):
            raise TypeError(f"data config must be a mapping, got {type(mapping).__name__}")
        valid = [f.name for f in fields(cls)]
        items = {str(k): v for k, v in mapping.items()}
        unknown = sorted(set(items) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown data config key(s) {', '.join(unknown)}; valid keys are: "
                f"{', '.join(valid)}"
            )
        return cls(**{k: _plain(v) for k, v in items.items()})


def _plain(value: Any) -> Any:
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, Sequence) or type(value).__name__ == "ListConfig":
        return tuple(_plain(v) for v in value)
    return value


def validate_config(config: DataConfig, *, seed: int) -> None:
    """Check a config before any data is loaded.

    Raises:
        TypeError: for a value of the wrong type.
        ValueError: naming the key, the bad value and what is valid.
    """
    if not isinstance(config, DataConfig):
        raise TypeError(f"config must be a DataConfig, got {type(config).__name__}")
    check_int(seed, parameter="seed", low=0)
    SOURCES.validate(config.source, parameter="data.source")
    SCENARIOS.validate(config.scenario, parameter="data.scenario")
    check_int(config.num_tasks, parameter="data.num_tasks", low=1)
    check_fraction(config.val_fraction, parameter="data.val_fraction")
    for key in ("train_subset", "test_subset"):
        if getattr(config, key) is not None:
            check_int(getattr(config, key), parameter=f"data.{key}", low=1)
    for key in ("root", "cache_dir"):
        value = getattr(config, key)
        if value is not None and not isinstance(value, str):
            raise TypeError(f"data.{key} must be a path string or None, got {value!r}")
    for key in ("shuffle_classes", "permute_first_task", "download"):
        check_bool(getattr(config, key), parameter=f"data.{key}")
    _validate_split_keys(config)
    _validate_rotated_keys(config)
    _validate_augment_keys(config)


def _validate_augment_keys(config: DataConfig) -> None:
    if isinstance(config.augment, str) or not isinstance(config.augment, Sequence):
        raise TypeError(f"data.augment must be a list of names, got {config.augment!r}")
    for name in config.augment:
        AUGMENTATIONS.validate(name, parameter="data.augment entry")
    if len(set(config.augment)) != len(config.augment):
        raise ValueError(f"data.augment={list(config.augment)} names an operation twice")
    check_int(config.crop_padding, parameter="data.crop_padding", low=0)


def _validate_split_keys(config: DataConfig) -> None:
    num_classes = source_info(config.source).num_classes
    order = config.class_order
    if order is not None:
        if config.scenario != "split":
            raise ValueError(
                f"data.class_order={order!r} only applies to scenario 'split', "
                f"not {config.scenario!r}; remove it"
            )
        bad = [c for c in order if not isinstance(c, int) or isinstance(c, bool)]
        bad += [c for c in order if isinstance(c, int) and not 0 <= c < num_classes]
        if bad or not order:
            raise ValueError(
                f"data.class_order={tuple(order)!r} has invalid entries {bad!r}; it must list "
                f"distinct class labels in [0, {num_classes}) of source {config.source!r}"
            )
        if len(set(order)) != len(order):
            raise ValueError(f"data.class_order={tuple(order)!r} repeats a class")
    if config.scenario == "split":
        available = len(order) if order is not None else num_classes
        if config.num_tasks > available:
            raise ValueError(
                f"data.num_tasks={config.num_tasks} exceeds the {available} classes available "
                f"to scenario 'split' on source {config.source!r}; valid: 1..{available}"
            )


def _validate_rotated_keys(config: DataConfig) -> None:
    if config.angles is not None:
        if config.scenario != "rotated":
            raise ValueError(
                f"data.angles={config.angles!r} only applies to scenario 'rotated', "
                f"not {config.scenario!r}; remove it"
            )
        if len(config.angles) != config.num_tasks:
            raise ValueError(
                f"data.angles has {len(config.angles)} entries but data.num_tasks="
                f"{config.num_tasks}; give exactly one angle per task"
            )
        for angle in config.angles:
            check_number(angle, parameter="data.angles entry")
    check_number(config.max_angle, parameter="data.max_angle")

