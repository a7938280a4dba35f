"""LwF: learning without forgetting (Li and Hoiem, TPAMI 2017)."""

from __future__ import annotations

import copy

import torch

from hatcl.algorithms.base import Algorithm, StepContext
from hatcl.backbones.model import ContinualModel
from hatcl.functional.distillation import distillation_loss
from hatcl.heads.heads import ClassIncrementalHeads
from hatcl.masking.stage import Stage
from hatcl.validation import check_number


class LwF(Algorithm):
    """Distil the old model's outputs on the new task's inputs into every old head.

    At the start of task t > 1 a frozen copy of the model (the "old network") is taken. Each
    training step adds ``distillation_weight * sum_{tau < t} L_old(tau)``, where ``L_old`` is the
    temperature-softened cross-entropy between the old network's and the current network's
    outputs of head tau on the current batch (eq. 2; the old responses are computed on the fly,
    equal to recording them before training). With a shared (DIL) head it is distilled once.
    With ``head=cil`` the logits of all old classes (tasks 1..t-1, global labels) are distilled
    as one softened distribution.
    The paper's warm-up of the new head alone is not applied.

    Args:
        distillation_weight: lambda_o, the weight of the old-task loss (the paper uses 1).
        temperature: T of the softened outputs (the paper uses 2).
    """

    def __init__(self, *, distillation_weight: float = 1.0, temperature: float = 2.0) -> None:
        super().__init__()
        self.distillation_weight = check_number(
            distillation_weight, parameter="distillation_weight", low=0.0
        )
        self.temperature = check_number(
            temperature, parameter="temperature", low=0.0, low_inclusive=False
        )
        self._old_tasks: tuple[int, ...] = ()
        self._old_classes: int | None = None  # head=cil: the number of old classes
        # Not a submodule on purpose: the old network is re-taken at every task start, so it is
        # no part of the algorithm's state (and is not moved or saved with it).
        object.__setattr__(self, "_teacher", None)

    def on_task_start(self, *, task_id: int, model: ContinualModel) -> None:
        """Freeze a copy of the model trained on tasks 1..task_id-1."""
        self._old_tasks = _distinct_heads(model, range(1, task_id))
        heads = model.heads
        cil = isinstance(heads, ClassIncrementalHeads) and not heads.per_task_network
        self._old_classes = heads.offset(task_id) if cil else None
        teacher = None
        if self._old_tasks:
            teacher = copy.deepcopy(model).eval()
            teacher.requires_grad_(False)
        object.__setattr__(self, "_teacher", teacher)

    def loss_terms(self, context: StepContext) -> dict[str, torch.Tensor]:
        """``{"lwf": weighted distillation loss over the old heads}`` from task 2 on."""
        teacher = self._teacher
        if teacher is None:
            return {}
        teacher.to(context.inputs.device)
        if self._old_classes is not None:
            return {"lwf": self.distillation_weight * self._old_class_loss(context, teacher)}
        features = context.output.backbone.features
        total = features.new_zeros(())
        for task_id in self._old_tasks:
            student = context.model.heads(features, task_id=task_id)
            with torch.no_grad():
                old = teacher(context.inputs, task_id=task_id, stage=Stage.TEST).logits
            total = total + distillation_loss(student, old, temperature=self.temperature)
        return {"lwf": self.distillation_weight * total}

    def _old_class_loss(self, context: StepContext, teacher: ContinualModel) -> torch.Tensor:
        """``head=cil``: distil the old model's logits of the old classes (global labels)."""
        width = self._old_classes
        with torch.no_grad():
            old = teacher(context.inputs, task_id=context.task_id, stage=Stage.TEST).logits
        student = context.output.logits[:, :width]
        return distillation_loss(student, old[:, :width], temperature=self.temperature)


def _distinct_heads(model: ContinualModel, task_ids: range) -> tuple[int, ...]:
    """The first task id of every distinct head among ``task_ids`` (a DIL head counts once)."""
    seen: set[int] = set()
    chosen = []
    for task_id in task_ids:
        head = id(model.heads.head(task_id))
        if head not in seen:
            seen.add(head)
            chosen.append(task_id)
    return tuple(chosen)
