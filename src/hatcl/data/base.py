"""Data contracts and the entry point that builds a continual-learning task sequence.

``build_continual_data(config, seed=...)`` loads a source (decoded once into compact tensors,
optionally cached on disk) and lets the scenario plan the tasks. A task holds its plan (which
source rows, which transform), never a copy: every batch is gathered from the shared source,
normalised and transformed when it is drawn (:mod:`hatcl.data.rows`), so memory and build time do
not grow with the number of tasks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from hatcl.data.cache import cached_source
from hatcl.data.registries import SCENARIOS, SOURCES, source_info
from hatcl.data.rows import LazyRows, PlannedRows
from hatcl.data.seeding import derive_seed
from hatcl.data.source import Normalisation, SourceData
from hatcl.validation import check_bool, check_fraction, check_int, check_number

__all__ = [
    "ContinualData",
    "DataConfig",
    "SourceData",
    "TaskData",
    "TaskPlan",
    "TensorSplit",
    "build_continual_data",
    "load_source",
    "validate_config",
]

#: Seed of the validation split; fixed so every experiment seed selects models on the same samples.
VAL_SPLIT_SEED = 20_240_607


@dataclass(frozen=True)
class TensorSplit:
    """One split of one task: inputs and the labels its head sees.

    Built by :func:`build_continual_data`, both are :class:`~hatcl.data.rows.LazyRows`: indexing
    them with a slice or an index tensor builds that batch only (float32 inputs normalised with
    the dataset's mean/std and transformed; int64 labels). Plain tensors are accepted too.

    Attributes:
        x: inputs, shape ``(N, *input_shape)``.
        y: labels as the task's head sees them (a split task is relabelled ``0..k-1``).
    """

    x: Tensor | LazyRows
    y: Tensor | LazyRows

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class TaskData:
    """The tensors of one task.

    Attributes:
        task_id: 1-based task id.
        train: training split.
        val: validation split carved from the source's training split (fixed seed).
        test: test split taken from the source's official test split.
        num_classes: number of outputs of this task's head.
        class_labels: original dataset labels of this task; head output ``i`` is
            ``class_labels[i]``.
    """

    task_id: int
    train: TensorSplit
    val: TensorSplit
    test: TensorSplit
    num_classes: int
    class_labels: tuple[int, ...]


@dataclass(frozen=True)
class ContinualData:
    """A whole task sequence.

    Attributes:
        source: source name (a ``SOURCES`` entry).
        scenario: scenario name (a ``SCENARIOS`` entry).
        input_shape: per-sample shape, e.g. ``(1, 8, 8)`` for digits.
        tasks: the tasks in training order (``tasks[i].task_id == i + 1``).
    """

    source: str
    scenario: str
    input_shape: tuple[int, ...]
    tasks: tuple[TaskData, ...]


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


@dataclass(frozen=True)
class TaskPlan:
    """What a scenario decides about one task (the builder slices the tensors).

    Attributes:
        task_id: 1-based task id.
        class_labels: original labels of the task's classes (head output i = class_labels[i]).
        transform: applied to the task's (already sliced) inputs; ``None`` for identity.
    """

    task_id: int
    class_labels: tuple[int, ...]
    transform: Callable[[Tensor], Tensor] | None = None


# --------------------------------------------------------------------------------------------
# validation


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


# --------------------------------------------------------------------------------------------
# building


def load_source(config: DataConfig) -> SourceData:
    """Load (or read from the cache) the decoded, compact tensors of ``config.source``."""
    loader = SOURCES.get(config.source)
    return cached_source(
        name=config.source,
        cache_dir=config.cache_dir,
        load=lambda: loader(root=config.root, download=config.download),
    )


def build_continual_data(config: DataConfig, *, seed: int) -> ContinualData:
    """Build the task sequence described by ``config``.

    Args:
        config: the data configuration.
        seed: experiment seed (non-negative); permutations, class shuffles and subsets derive
            their seeds from it. The validation split uses a fixed seed of its own.

    Returns:
        The tasks, each with lazy train/validation/test rows.

    Raises:
        ValueError / TypeError: for an invalid configuration.
        FileNotFoundError: when dataset files are missing (the message says what to put where).
    """
    validate_config(config, seed=seed)
    source = load_source(config)
    info = source_info(config.source)
    shape = tuple(source.train_x.shape[1:])
    if source.num_classes != info.num_classes or shape != tuple(info.input_shape):
        raise ValueError(
            f"source {config.source!r} loaded {source.num_classes} classes of shape {shape}, "
            f"its registry entry says {info.num_classes} of shape {tuple(info.input_shape)}"
        )
    planner = SCENARIOS.get(config.scenario)
    plans = planner(source=source, config=config, seed=seed)
    tasks = tuple(_task_data(source, plan, config, seed) for plan in plans)
    return ContinualData(
        source=config.source,
        scenario=config.scenario,
        input_shape=source.sample_shape,
        tasks=tasks,
    )


def _task_data(source: SourceData, plan: TaskPlan, config: DataConfig, seed: int) -> TaskData:
    labels = torch.tensor(plan.class_labels, dtype=torch.int64)
    train_pool = _indices_of(source.train_y, labels)
    train_pool = _subset(train_pool, config.train_subset, derive_seed(seed, "train", plan.task_id))
    test_idx = _indices_of(source.test_y, labels)
    test_idx = _subset(test_idx, config.test_subset, derive_seed(seed, "test", plan.task_id))
    train_idx, val_idx = _carve_validation(train_pool, config.val_fraction, plan.task_id)
    if train_idx.numel() == 0:
        raise ValueError(
            f"task {plan.task_id} has no training samples left after holding out "
            f"data.val_fraction={config.val_fraction} of {train_pool.numel()}; "
            "raise data.train_subset or lower data.val_fraction"
        )
    table = torch.full((source.num_classes,), -1, dtype=torch.int64)
    table[labels] = torch.arange(labels.numel())
    inputs = _input_map(source.normaliser(), plan.transform)

    def split(x: Tensor, y: Tensor, idx: Tensor | None) -> TensorSplit:
        return TensorSplit(
            x=PlannedRows(x, indices=idx, apply=inputs, dtype=torch.float32),
            y=PlannedRows(y, indices=idx, apply=table.__getitem__, dtype=torch.int64),
        )

    all_test = test_idx.numel() == source.test_y.numel()
    return TaskData(
        task_id=plan.task_id,
        train=split(source.train_x, source.train_y, train_idx),
        val=split(source.train_x, source.train_y, val_idx),
        test=split(source.test_x, source.test_y, None if all_test else test_idx),
        num_classes=len(plan.class_labels),
        class_labels=tuple(int(c) for c in plan.class_labels),
    )


def _input_map(
    normalise: Normalisation, transform: Callable[[Tensor], Tensor] | None
) -> Callable[[Tensor], Tensor]:
    """Raw batch -> normalised (then transformed) float32 batch."""
    if transform is None:
        return normalise
    return lambda raw: transform(normalise(raw))


def _indices_of(y: Tensor, labels: Tensor) -> Tensor:
    return torch.nonzero(torch.isin(y, labels), as_tuple=False).flatten()


def _subset(indices: Tensor, cap: int | None, seed: int) -> Tensor:
    if cap is None or indices.numel() <= cap:
        return indices
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(indices.numel(), generator=generator)[:cap]
    return indices[chosen.sort().values]


def _carve_validation(indices: Tensor, fraction: float, task_id: int) -> tuple[Tensor, Tensor]:
    n = indices.numel()
    n_val = int(math.floor(n * fraction))
    if fraction > 0 and n_val == 0 and n >= 2:
        n_val = 1
    generator = torch.Generator().manual_seed(derive_seed(VAL_SPLIT_SEED, "val", task_id))
    order = torch.randperm(n, generator=generator)
    val = indices[order[:n_val].sort().values]
    train = indices[order[n_val:].sort().values]
    return train, val
