"""The algorithm interface: named hooks called by the one training loop in a fixed order.

Step order (docs/spec.md §3): zero grads; forward; loss = cross-entropy + ``loss_terms``; backward;
``adjust_gradients``; ``compensate_gradients``; optimizer step; ``after_optimizer_step``.
Around the steps: ``on_task_start`` (inside the task's ``fit``, once the model is on its device
and in its dtype, right before the task's optimizer is built) and ``on_task_end`` (at the end of
the ``fit``, after the last epoch and the cross-process sums, while the model is still on its
device; before testing). ``configure_model`` runs once when the model is built;
``training_split`` chooses what a task trains on (default: the task's own training split).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch
from torch import nn

from hatcl.backbones.model import ContinualModel
from hatcl.backbones.step_context import StepContext


class SplitView(Protocol):
    """A task split as an algorithm reads it: inputs ``x`` and labels ``y``, first dim = samples."""

    @property
    def x(self) -> torch.Tensor: ...

    @property
    def y(self) -> torch.Tensor: ...


class TaskView(Protocol):
    """What an algorithm reads of a task: its 1-based id and its training split.

    ``hatcl.data``'s ``TaskView`` is one; algorithms depend on this shape, not on the data
    package, so that the layers stay in the order of docs/architecture.md.
    """

    @property
    def task_id(self) -> int: ...

    @property
    def train(self) -> SplitView: ...


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
    #: One network (a mask or a backbone) per task: each task trains on its own output block
    #: and, without a task id at test time (``head=cil``/``dil``), the task is predicted first
    #: (spec/class-incremental.md). Shared-network algorithms train on all seen classes.
    per_task_network: ClassVar[bool] = False

    def configure_model(self, *, model: ContinualModel) -> None:
        """Adapt the freshly built model once, before any task (e.g. wrap its backbone)."""

    def training_split(
        self, *, task_data: TaskView, seen_tasks: Sequence[TaskView]
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

    def on_task_end(self, *, task_id: int, model: ContinualModel, task_data: TaskView) -> None:
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
