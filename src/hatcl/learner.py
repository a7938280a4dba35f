"""A facade running any algorithm's hooks inside a training loop of one's own.

The hooks run in the one order of :mod:`hatcl.training.step` (docs/spec.md §3); the loop around
them, the loss and the optimizer are the user's::

    learner = Learner(backbone=hatcl.wrap(net, x), algorithm=FGAdaHAT(...))
    for task_id, (loader, num_classes) in enumerate(tasks, start=1):
        learner.start_task(task_id, num_classes=num_classes, num_batches=len(loader))
        optimizer = torch.optim.Adam(learner.trainable_parameters(), lr=1e-3)
        for x, y in loader:
            optimizer.zero_grad()
            logits = learner.forward(x, y)
            loss = F.cross_entropy(logits, learner.targets(y)) + learner.penalty()
            loss.backward()
            learner.before_optimizer_step()
            optimizer.step()
            learner.after_optimizer_step()
        learner.end_task()
    learner.predict(x)  # head="cil"/"dil": no task id, the task is predicted (cil.task_score)

``learner.targets(y)`` are the labels the logits are scored against: ``y`` itself, except for a
shared network under ``head="cil"`` (global labels over all seen classes).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from hatcl.algorithms.base import Algorithm, StepContext
from hatcl.backbones.base import Backbone
from hatcl.backbones.model import ContinualModel
from hatcl.data.base import TaskData, TensorSplit
from hatcl.heads.heads import ClassIncrementalHeads
from hatcl.heads.registries import HEADS
from hatcl.inference.evaluator import TaskAgnosticEvaluator
from hatcl.inference.registries import resolve_task_score
from hatcl.masking.stage import Stage
from hatcl.training import step

#: The order of the calls, written out in every phase error.
ORDER = (
    "start_task -> [forward -> penalty (optional) -> before_optimizer_step -> "
    "after_optimizer_step] per batch -> end_task -> predict"
)
#: Which phase may follow which: phase -> the phases after which it may be called.
_AFTER = {
    "start_task": ("idle",),
    "forward": ("start_task", "after_optimizer_step"),
    "penalty": ("forward", "penalty"),
    "before_optimizer_step": ("forward", "penalty"),
    "after_optimizer_step": ("before_optimizer_step",),
    "end_task": ("start_task", "after_optimizer_step"),
}


class Learner(nn.Module):
    """A backbone, its task heads and an algorithm, driven one hook at a time.

    Args:
        backbone: a :class:`Backbone` (``hatcl.wrap(...)`` or a built-in one).
        algorithm: any hatcl algorithm (HAT, AdaHAT, FGAdaHAT, EWC, ...).
        head: ``til`` (one head per task), ``dil`` (one shared head) or ``cil`` (global labels,
            all seen classes; see docs/scenarios.md).
        task_score: how :meth:`predict` without a task id scores each seen task (a
            ``cil.task_score`` name or ``package.module:fn``).
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        algorithm: Algorithm,
        head: str = "til",
        task_score: str = "max_softmax",
    ) -> None:
        super().__init__()
        heads = HEADS.resolve(head, parameter="head")(
            input_dim=backbone.output_dim, per_task_network=algorithm.per_task_network
        )
        self.evaluator = TaskAgnosticEvaluator(score=resolve_task_score(task_score))
        self.model = ContinualModel(backbone=backbone, heads=heads)
        self.algorithm = algorithm
        algorithm.configure_model(model=self.model)
        self.task_id: int | None = None
        self.num_batches = 1
        self._steps = 0
        self._context: StepContext | None = None
        self._phase = "idle"
        self._ended: set[int] = set()

    def start_task(self, task_id: int, *, num_classes: int, num_batches: int) -> None:
        """Set up ``task_id``: its head and per-task parts, then the algorithm's task start.

        Build the task's optimizer after this call (over :meth:`trainable_parameters`).

        Args:
            num_batches: training batches per epoch (the mask scale anneals over an epoch).
        """
        if isinstance(task_id, bool) or not isinstance(task_id, int) or task_id < 1:
            raise TypeError(f"task ids are positive ints, got {task_id!r}")
        if not isinstance(num_batches, int) or num_batches < 1:
            raise ValueError(f"num_batches must be a positive int, got {num_batches!r}")
        self._enter("start_task")
        self.task_id, self.num_batches, self._steps = task_id, num_batches, 0
        self.model.setup_task(task_id=task_id, num_classes=num_classes)
        self.algorithm.on_task_start(task_id=task_id, model=self.model)
        self.model.train()

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters the task's optimizer updates (the algorithm decides)."""
        return self.algorithm.trainable_parameters(self.model)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Training forward of one batch (labels ``y`` are needed by some importance types)."""
        task_id = self._current_task()
        self._enter("forward")
        batch_index = self._steps % self.num_batches
        self._steps += 1
        self._context = step.training_forward(
            model=self.model,
            algorithm=self.algorithm,
            inputs=x,
            targets=y,
            task_id=task_id,
            batch_index=batch_index,
            num_batches=self.num_batches,
        )
        return self._context.output.logits

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        """The labels the logits of :meth:`forward` are scored against (global under ``cil``)."""
        task_id = self.task_id if self.task_id is not None else self._last_ended()
        return self.model.heads.training_targets(y, task_id=task_id)

    def penalty(self) -> torch.Tensor | float:
        """The algorithm's loss terms for the last forward (add them to your loss)."""
        self._enter("penalty")
        return step.add_loss_terms(self.algorithm, self._step_context("penalty"), 0.0)

    def before_optimizer_step(self) -> None:
        """Call after ``loss.backward()``: adjusts and compensates the gradients."""
        self._enter("before_optimizer_step")
        step.before_optimizer_step(self.algorithm, self._step_context("before_optimizer_step"))

    def after_optimizer_step(self) -> None:
        """Call after ``optimizer.step()``: clamps, importance observation."""
        self._enter("after_optimizer_step")
        step.after_optimizer_step(self.algorithm, self._step_context("after_optimizer_step"))
        self._context = None

    def end_task(self, train: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        """Consolidate the task (store masks, importances, ...).

        Args:
            train: the task's training inputs and labels, for algorithms that read them at the
                end of a task (EWC's Fisher information); not needed by the HAT family.
        """
        task_id = self._current_task()
        self._enter("end_task")
        x, y = train if train is not None else (torch.empty(0), torch.empty(0, dtype=torch.long))
        split = TensorSplit(x=x, y=y)
        data = TaskData(
            task_id=task_id, train=split, val=split, test=split, num_classes=0, class_labels=()
        )
        self.algorithm.on_task_end(task_id=task_id, model=self.model, task_data=data)
        self._ended.add(task_id)
        self._phase, self.task_id = "idle", None

    @torch.no_grad()
    def predict(self, x: torch.Tensor, *, task_id: int | None = None) -> torch.Tensor:
        """Test logits; call after the last task's ``end_task``.

        With ``task_id``: that task's logits (its stored masks and head). Without (``head="cil"``
        or ``"dil"``): a per-task network predicts the task by the learner's ``task_score``, and
        under ``cil`` the logits are over all seen classes, ``-inf`` outside the predicted task's
        block, so their argmax is the global label.
        """
        if task_id is not None:
            self._check_ended(task_id)
            return self.model(x, task_id=task_id, stage=Stage.TEST).logits
        if self.model.heads.task_id_at_test:
            raise ValueError("predict(x) without task_id needs head='cil' or 'dil', not 'til'")
        seen = self._last_ended()
        prediction = self.evaluator.predict(self.model, x, seen=seen)
        heads = self.model.heads
        if prediction.task is None or not isinstance(heads, ClassIncrementalHeads):
            return prediction.logits
        total = heads.offset(seen) + heads.head(seen).out_features
        logits = prediction.logits.new_full((len(x), total), float("-inf"))
        for task in range(1, seen + 1):  # scatter each sample's block to its global columns
            start, width = heads.offset(task), heads.head(task).out_features
            chosen = (prediction.task == task)[:, None]
            block = prediction.logits[:, :width]
            logits[:, start : start + width] = torch.where(chosen, block, float("-inf"))
        return logits

    def _check_ended(self, task_id: int) -> None:
        if task_id not in self._ended:
            ended = ", ".join(map(str, sorted(self._ended))) or "none yet"
            raise RuntimeError(
                f"learner.predict(task_id={task_id!r}) before learner.end_task() of task "
                f"{task_id!r}: a task's masks and importances are stored by end_task (tasks "
                f"ended: {ended}); the order is {ORDER}"
            )

    def _last_ended(self) -> int:
        if not self._ended:
            raise RuntimeError(
                "learner.predict(x) before any learner.end_task(): a task's masks and "
                f"importances are stored by end_task; the order is {ORDER}"
            )
        return max(self._ended)

    def _current_task(self) -> int:
        if self.task_id is None:
            raise RuntimeError(
                f"call learner.start_task(task_id, ...) before training; the order is {ORDER}"
            )
        return self.task_id

    def _enter(self, phase: str) -> None:
        """Move to ``phase``; a skipped or repeated phase raises, naming the order."""
        if self._phase not in _AFTER[phase]:
            raise RuntimeError(
                f"learner.{phase}() called after {_describe(self._phase)}; expected after "
                f"{' or '.join(map(_describe, _AFTER[phase]))}. The order is {ORDER} (a skipped "
                "before_optimizer_step would train without protection)"
            )
        self._phase = phase

    def _step_context(self, hook: str) -> StepContext:
        if self._context is None:
            raise RuntimeError(f"learner.{hook}() needs a learner.forward(x, y) in this step first")
        return self._context


def _describe(phase: str) -> str:
    if phase == "idle":
        return "no open task (at the start, or after learner.end_task())"
    return "learner.forward(x, y)" if phase == "forward" else f"learner.{phase}()"
