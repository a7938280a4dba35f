"""The algorithm interface: named hooks called by the one training loop in a fixed order.

Step order (spec §3): zero grads; forward; loss = cross-entropy + ``loss_terms``; backward;
``adjust_gradients``; ``compensate_gradients``; optimizer step; ``after_optimizer_step``.
Around the steps: ``on_task_start`` (inside the task's ``fit``, once the model is on its device
and in its dtype, right before the task's optimizer is built) and ``on_task_end`` (at the end of
the ``fit``, after the last epoch and the cross-process sums, while the model is still on its
device; before testing). ``configure_model`` runs once when the model is built;
``training_split`` chooses what a task trains on (default: the task's own training split).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from hatcl.backbones.model import ContinualModel, ModelOutput
from hatcl.data.base import TaskData


@dataclass(frozen=True)
class StepContext:
    """Everything a hook may read about the current training step.

    ``gradients_finite`` is set (from the optimizer step on) when the loop checks gradients
    because a grad scaler may skip the step (``16-mixed``): a 0-dim bool tensor, ``False`` when
    some gradient was inf or nan and the optimizer step was skipped; hooks must then change no
    state (use it in ``torch.where``, never in a Python ``if``: no host sync). ``None``: the
    step was not checked (every optimizer step is applied).

    ``cache`` holds what one hook of the step computes and a later hook of the same step reads
    (e.g. the network sparsity R_l of the loss term, read again by the gradient adjustment),
    so that it is computed once per step; a new step starts with an empty cache.
    """

    model: ContinualModel
    task_id: int
    batch_index: int
    num_batches: int
    scale: float | None
    inputs: torch.Tensor
    targets: torch.Tensor
    output: ModelOutput
    task_ids: torch.Tensor | None = None
    gradients_finite: torch.Tensor | None = None
    cache: dict[str, object] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class TrainingSplit:
    """What a task trains on: inputs, labels and, for mixed-task data, each sample's task id.

    Attributes:
        x: inputs, first dim = samples.
        y: labels as each sample's own head sees them.
        task_ids: ``None`` (every sample belongs to the current task) or an int64 tensor of
            1-based task ids, one per sample; each sample then goes through its own task's head.
    """

    x: torch.Tensor
    y: torch.Tensor
    task_ids: torch.Tensor | None = None


class Algorithm(nn.Module):
    """Base continual-learning algorithm: plain training, every hook a no-op.

    Algorithms are modules so that their state (buffers) travels in ``state_dict``.
    """

    uses_masks: ClassVar[bool] = False

    def configure_model(self, *, model: ContinualModel) -> None:
        """Adapt the freshly built model once, before any task (e.g. wrap its backbone)."""

    def training_split(
        self, *, task_data: TaskData, seen_tasks: Sequence[TaskData]
    ) -> TrainingSplit:
        """The data the task trains on (``seen_tasks``: tasks 1..current, in order)."""
        return TrainingSplit(x=task_data.train.x, y=task_data.train.y)

    def on_task_start(self, *, task_id: int, model: ContinualModel) -> None:
        """Prepare for training ``task_id`` (called before the task's optimizer is built)."""

    def trainable_parameters(self, model: ContinualModel) -> Iterator[nn.Parameter]:
        """The parameters the task's optimizer updates."""
        return (p for p in model.parameters() if p.requires_grad)

    def training_scale(self, *, batch_index: int, num_batches: int) -> float | None:
        """The mask scale s of a training step (``None`` without masks)."""
        return None

    def evaluation_scale(self) -> float | None:
        """The mask scale s used for validation (``None`` without masks)."""
        return None

    def loss_terms(self, context: StepContext) -> dict[str, torch.Tensor]:
        """Extra loss terms added to the cross-entropy, by name (each a 0-dim tensor)."""
        return {}

    def adjust_gradients(self, context: StepContext) -> None:
        """Modify backbone gradients after backward (step 5)."""

    def compensate_gradients(self, context: StepContext) -> None:
        """Modify other gradients (e.g. task embeddings) after the adjustment (step 6)."""

    def after_optimizer_step(self, context: StepContext) -> None:
        """Work after the optimizer step (clamps, importance observation)."""

    def on_task_end(self, *, task_id: int, model: ContinualModel, task_data: TaskData) -> None:
        """Consolidate after the task's last training step (before testing)."""

    def distributed_sums(self) -> list[torch.Tensor]:
        """Tensors accumulated per process during the task (e.g. importance sum and count).

        Under distributed training each process sees only its shard of the batches; the loop
        sums these tensors across processes, in place, right before :meth:`on_task_end` (the one
        reduction path), so that every process consolidates the same state.
        """
        return []

    def step_metrics(self) -> dict[str, float]:
        """Scalars of the last step worth logging (e.g. network capacity)."""
        return {}

    def task_summary(self, *, task_id: int, model: ContinualModel) -> dict[str, object]:
        """JSON-ready facts about the finished task (e.g. mask usage), written to the run folder."""
        return {}
