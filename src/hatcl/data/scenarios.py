"""Continual-learning scenarios: each plans the tasks (classes and input transform per task).

A planner is called as ``plan(source=..., config=..., seed=...)`` and returns one ``TaskPlan`` per
task; ``build_continual_data`` slices the tensors.
"""

from __future__ import annotations

import torch

from hatcl.data.base import DataConfig, SourceData, TaskPlan
from hatcl.data.transforms import PixelPermutation, Rotation
from hatcl.seeding import derive_seed


def plan_permuted(*, source: SourceData, config: DataConfig, seed: int) -> tuple[TaskPlan, ...]:
    """Every task has all classes; task t's inputs get one fixed permutation of their features.

    The permutation of task t is drawn from a seed derived from ``seed`` and t. Task 1 keeps the
    original inputs when ``config.permute_first_task`` is false.
    """
    classes = tuple(range(source.num_classes))
    num_features = int(source.train_x[0].numel())
    plans = []
    for task_id in range(1, config.num_tasks + 1):
        transform = None
        if task_id > 1 or config.permute_first_task:
            generator = torch.Generator().manual_seed(derive_seed(seed, "permutation", task_id))
            transform = PixelPermutation(torch.randperm(num_features, generator=generator))
        plans.append(TaskPlan(task_id=task_id, class_labels=classes, transform=transform))
    return tuple(plans)


def split_class_order(*, num_classes: int, config: DataConfig, seed: int) -> tuple[int, ...]:
    """The class order of the split scenario: configured, seeded shuffle, or natural order."""
    if config.class_order is not None:
        return tuple(int(c) for c in config.class_order)
    if config.shuffle_classes:
        generator = torch.Generator().manual_seed(derive_seed(seed, "class_order"))
        return tuple(int(c) for c in torch.randperm(num_classes, generator=generator))
    return tuple(range(num_classes))


def group_sizes(num_items: int, num_groups: int) -> tuple[int, ...]:
    """Sizes of ``num_groups`` groups as equal as possible; the first ones take the remainder.

    E.g. 10 classes into 3 tasks gives (4, 3, 3).
    """
    base, extra = divmod(num_items, num_groups)
    return tuple(base + 1 if i < extra else base for i in range(num_groups))


def plan_split(*, source: SourceData, config: DataConfig, seed: int) -> tuple[TaskPlan, ...]:
    """Partition the classes (in the configured or seeded order) into ``num_tasks`` groups.

    Consecutive groups of the class order form the tasks, as equal in size as possible (when
    the classes do not divide evenly, the first tasks get one class more). Each task's labels
    are relabelled ``0..k-1`` in class-order position.
    """
    order = split_class_order(num_classes=source.num_classes, config=config, seed=seed)
    plans = []
    start = 0
    for task_id, size in enumerate(group_sizes(len(order), config.num_tasks), start=1):
        plans.append(TaskPlan(task_id=task_id, class_labels=order[start : start + size]))
        start += size
    return tuple(plans)


def rotation_angles(config: DataConfig) -> tuple[float, ...]:
    """Angles of the rotated scenario: configured, or ``max_angle * (t - 1) / num_tasks``."""
    if config.angles is not None:
        return tuple(float(a) for a in config.angles)
    return tuple(float(config.max_angle) * t / config.num_tasks for t in range(config.num_tasks))


def plan_rotated(*, source: SourceData, config: DataConfig, seed: int) -> tuple[TaskPlan, ...]:
    """Every task has all classes; task t's images are rotated by its angle.

    Raises:
        ValueError: if the source's samples are not square images.
    """
    del seed
    shape = tuple(source.train_x.shape[1:])
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ValueError(
            f"scenario 'rotated' needs square images (C, H, W); source {source.name!r} has "
            f"samples of shape {shape}; use scenario 'permuted' or 'split' instead"
        )
    classes = tuple(range(source.num_classes))
    fill = source.background if source.mean else ()
    return tuple(
        TaskPlan(task_id=t, class_labels=classes, transform=Rotation(angle=angle, fill=fill))
        for t, angle in enumerate(rotation_angles(config), start=1)
    )
