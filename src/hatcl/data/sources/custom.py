"""A user's own task sequence, given by import path (``data=custom data.target=pkg.mod:fn``).

Contract of the target: called with ``data.options`` as keyword arguments, it returns a list with
one entry per task, in training order. An entry is a mapping with

- ``train``: the training data, a pair ``(inputs, labels)`` of tensors (or arrays) or a
  ``torch.utils.data.Dataset`` of ``(input, label)`` pairs;
- ``test``: the test data, in the same form;
- ``val`` (optional): validation data; without it ``data.val_fraction`` of ``train`` is held
  out (fixed seed);
- ``num_classes`` (optional): the task head's outputs; default ``max label + 1``.

Inputs are float tensors ``(samples, *input_shape)``, the same shape for every task; labels are
integers in ``[0, num_classes)`` as the task's head sees them. Everything is checked before a
model is built; a wrong type or shape names the task and the key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from hatcl.data.base import ContinualData, DataConfig, TaskData, TensorSplit
from hatcl.data.errors import DataTypeError, DataValueError
from hatcl.seeding import derive_seed

CUSTOM = "custom"
#: The ``data`` keys a user's task sequence reads; the built-in sources' keys (num_tasks,
#: train_subset, ...) do not apply to it and are refused, so config.yaml records only what ran.
ACCEPTED_KEYS = (
    "source", "scenario", "target", "options", "val_fraction", "augment", "crop_padding"
)
#: Samples of a Dataset read twice to detect per-read randomness (random transforms).
REREAD_SAMPLES = 8


@dataclass(frozen=True, kw_only=True)
class CustomDataConfig(DataConfig):
    """``data=custom``: the import path of a task-sequence function and its keyword options."""

    source: str = CUSTOM
    scenario: str = CUSTOM
    target: str = ""
    options: dict = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> CustomDataConfig:
        """As :meth:`DataConfig.from_mapping`; ``options`` stays a plain dict.

        Raises:
            ValueError: a key of the built-in sources (e.g. ``num_tasks``), which a task sequence
                of one's own does not read, naming the keys it accepts.
        """
        items = {str(k): v for k, v in mapping.items()}
        ignored = sorted(set(items) - set(ACCEPTED_KEYS))
        if ignored:
            raise ValueError(
                f"data=custom does not use data.{', data.'.join(ignored)} (keys of the built-in "
                f"sources); it accepts {', '.join(ACCEPTED_KEYS)}: pass your function's own "
                "arguments as data.options.<name> (e.g. +data.options.num_tasks=2)"
            )
        options = items.pop("options", None) or {}
        if hasattr(options, "_metadata"):
            from omegaconf import OmegaConf

            options = OmegaConf.to_container(options, resolve=True)
        if not isinstance(options, Mapping):
            raise TypeError(f"data.options must be a mapping of keyword arguments, got {options!r}")
        config = super().from_mapping(items)
        object.__setattr__(config, "options", dict(options))
        return config


def build_custom_data(config: CustomDataConfig, *, seed: int) -> ContinualData:
    """Call the target and check its tasks (the contract in this module's docstring)."""
    from hatcl.wrap.custom import resolve_target

    del seed  # the validation split uses a fixed seed, as for the built-in sources
    produce = resolve_target(config.target, parameter="data.target")
    entries = produce(**config.options)
    if isinstance(entries, (str, bytes, Mapping)) or not isinstance(entries, Sequence):
        raise DataTypeError(
            f"data.target={config.target!r} returned a {type(entries).__name__}; it must return "
            "a list with one mapping per task (keys train, test, optional val and num_classes)"
        )
    if not entries:
        raise DataValueError(f"data.target={config.target!r} returned no tasks")
    tasks = tuple(
        _task(entry, task_id=index + 1, config=config) for index, entry in enumerate(entries)
    )
    shapes = {tuple(task.train.x.shape[1:]) for task in tasks}
    if len(shapes) != 1:
        raise DataValueError(f"every task's inputs must have the same shape, got {sorted(shapes)}")
    return ContinualData(source=CUSTOM, scenario=CUSTOM, input_shape=shapes.pop(), tasks=tasks)


def _task(entry: object, *, task_id: int, config: CustomDataConfig) -> TaskData:
    if not isinstance(entry, Mapping) or not {"train", "test"} <= set(entry):
        raise DataTypeError(
            f"task {task_id} of data.target={config.target!r} must be a mapping with keys "
            f"'train' and 'test' (optional 'val', 'num_classes'), got {type(entry).__name__}"
            + (f" with keys {sorted(entry)}" if isinstance(entry, Mapping) else "")
        )
    train = _split(entry["train"], task_id=task_id, key="train")
    test = _split(entry["test"], task_id=task_id, key="test")
    if "val" in entry:
        val = _split(entry["val"], task_id=task_id, key="val")
    else:
        train, val = _hold_out(train, config.val_fraction, task_id)
    labels = torch.cat([train.y, val.y, test.y])
    num_classes = int(entry.get("num_classes", int(labels.max()) + 1))
    if labels.min() < 0 or labels.max() >= num_classes:
        raise DataValueError(
            f"task {task_id}: labels must lie in [0, {num_classes}), got "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
    return TaskData(
        task_id=task_id,
        train=train,
        val=val,
        test=test,
        num_classes=num_classes,
        class_labels=tuple(range(num_classes)),
    )


def _split(value: object, *, task_id: int, key: str) -> TensorSplit:
    if isinstance(value, torch.utils.data.Dataset) and hasattr(value, "__len__"):
        value = _read_dataset(value, task_id=task_id, key=key)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise DataTypeError(
            f"task {task_id} '{key}' must be (inputs, labels) or a Dataset of (input, label) "
            f"pairs, got {type(value).__name__}"
        )
    x, y = (torch.as_tensor(v) for v in value)
    if not torch.is_floating_point(x) or x.dim() < 2:
        raise DataTypeError(
            f"task {task_id} '{key}' inputs must be a float tensor (samples, ...), got "
            f"{x.dtype} of shape {tuple(x.shape)}"
        )
    if y.dim() != 1 or len(y) != len(x) or torch.is_floating_point(y) or len(y) == 0:
        raise DataValueError(
            f"task {task_id} '{key}' labels must be a non-empty 1-D integer tensor with one "
            f"label per input ({len(x)}), got {y.dtype} of shape {tuple(y.shape)}"
        )
    return TensorSplit(x=x.float().contiguous(), y=y.long())


def _read_dataset(dataset: Any, *, task_id: int, key: str) -> tuple[Tensor, Tensor]:
    """Every ``(input, label)`` pair, read once; a dataset whose reads differ is refused.

    hatcl reads a Dataset once and trains on those tensors every epoch, so a random transform in
    ``__getitem__`` would be drawn once and reused: refused rather than silently frozen.
    """
    pairs = [dataset[i] for i in range(len(dataset))]
    inputs = torch.stack([torch.as_tensor(x) for x, _ in pairs])
    for index in range(min(REREAD_SAMPLES, len(pairs))):
        again = torch.as_tensor(dataset[index][0])
        if again.shape != inputs[index].shape or not torch.equal(again, inputs[index]):
            raise DataValueError(
                f"task {task_id} '{key}': the Dataset returned a different input when sample "
                f"{index} was read again (a random transform in __getitem__?). hatcl reads a "
                "Dataset once and would reuse that one draw every epoch; return fixed inputs and "
                "use data.augment for per-epoch random crops and flips (applied to every "
                "training batch, docs/spec.md §13)"
            )
    return inputs, torch.as_tensor([int(y) for _, y in pairs])


def _hold_out(train: TensorSplit, fraction: float, task_id: int) -> tuple[TensorSplit, TensorSplit]:
    count = int(len(train) * fraction)
    generator = torch.Generator().manual_seed(derive_seed(20_240_607, "custom_val", task_id))
    order = torch.randperm(len(train), generator=generator)
    val, kept = order[:count].sort().values, order[count:].sort().values

    def pick(index: Tensor) -> TensorSplit:
        return TensorSplit(x=train.x[index], y=train.y[index])

    return pick(kept), pick(val)
