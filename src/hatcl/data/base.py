"""Data contracts and the entry point that builds a continual-learning task sequence.

``build_continual_data(config, seed=...)`` loads a source (decoded once into compact tensors,
optionally cached on disk) and lets the scenario plan the tasks. A task holds its plan (which
source rows, which transform), never a copy: every batch is gathered from the shared source,
normalised and transformed when it is drawn (:mod:`hatcl.data.rows`), so memory and build time do
not grow with the number of tasks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from hatcl.data.cache import cached_source
from hatcl.data.config import DataConfig, validate_config
from hatcl.data.registries import SCENARIOS, SOURCES, source_info
from hatcl.data.rows import LazyRows, PlannedRows
from hatcl.data.source import Normalisation, SourceData
from hatcl.seeding import derive_seed

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
