"""Test-time evaluation without a task id: task-agnostic, task-aware and task-id counts.

Used by the training loop under ``head=cil`` and ``head=dil`` (spec/class-incremental.md).
A per-task-network algorithm (HAT family, independent) runs every test batch once under each
seen task (its mask or its network), scores each task's logits, calibrates the scores, picks the
best task (ties to the lower id) and predicts within it. A shared network under ``cil`` predicts
over the logits of all seen classes. Everything stays on the model's device (no host syncs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from hatcl.backbones.model import ContinualModel
from hatcl.data.base import TaskData
from hatcl.functional.task_scores import affine, predict_task
from hatcl.heads.heads import ClassIncrementalHeads
from hatcl.inference.batched import DEFAULT_TASK_CHUNK
from hatcl.inference.batched import task_logits as _batched_task_logits
from hatcl.inference.calibration import calibration_indices
from hatcl.inference.config import CilConfig
from hatcl.inference.registries import CALIBRATIONS, resolve_task_score
from hatcl.masking.stage import Stage


@dataclass(frozen=True)
class TaskPrediction:
    """Task-agnostic prediction of a batch.

    Attributes:
        task: ``(N,)`` predicted 1-based task id (per-task networks; ``None`` otherwise).
        logits: ``(N, k)`` logits the class is predicted from (the predicted task's block or
            shared head; for a shared network under ``cil``, all seen classes).
        labels: ``(N,)`` predicted class: global label under ``cil``, the shared label under
            ``dil``.
    """

    task: Tensor | None
    logits: Tensor
    labels: Tensor


class TaskAgnosticEvaluator:
    """Predicts without a task id and counts TAg, TAw and task-id hits of test batches.

    Args:
        score: ``fn(logits) -> (batch,)`` scores (``cil.task_score``).
        calibration: a ``CALIBRATIONS`` name.
        calibration_per_class: calibration samples per class of each seen task's validation
            split.
        seed: the run seed (the calibration set's draw).
        task_chunk: at most this many seen tasks per forward (``inference/batched.py``).
    """

    def __init__(
        self,
        *,
        score: Callable[[Tensor], Tensor],
        calibration: str = "none",
        calibration_per_class: int = 20,
        seed: int = 1,
        task_chunk: int = DEFAULT_TASK_CHUNK,
    ) -> None:
        self.score = score
        self.task_chunk = task_chunk
        self.calibration = CALIBRATIONS.validate(calibration, parameter="cil.calibration")
        self.calibration_per_class = calibration_per_class
        self.seed = seed
        self.weight: Tensor | None = None
        self.bias: Tensor | None = None

    @classmethod
    def from_config(cls, config: CilConfig, *, seed: int) -> TaskAgnosticEvaluator:
        """The evaluator of a run's ``cil`` section."""
        return cls(
            score=resolve_task_score(config.task_score),
            calibration=config.calibration,
            calibration_per_class=config.calibration_per_class,
            seed=seed,
            task_chunk=config.task_chunk,
        )

    @staticmethod
    def predicts_task(model: ContinualModel) -> bool:
        """Whether a task is predicted: per-task networks, or implied by a class under ``cil``."""
        return model.heads.per_task_network or isinstance(model.heads, ClassIncrementalHeads)

    # -- calibration ------------------------------------------------------------------------

    @torch.no_grad()
    def prepare(
        self, model: ContinualModel, tasks: Sequence[TaskData], *, batch_size: int = 256
    ) -> dict[str, object]:
        """Fit the calibration for the seen ``tasks`` (after training the last of them).

        Returns JSON-ready facts for the task's summary (the fitted w and b).
        """
        self.weight = self.bias = None
        if not model.heads.per_task_network or self.calibration == "none":
            return {}
        training = model.training
        model.eval()  # no dropout, running norm statistics: the calibration sees test behaviour
        try:
            logits, truth = calibration_logits(
                model,
                tasks,
                per_class=self.calibration_per_class,
                seed=self.seed,
                batch_size=batch_size,
                task_chunk=self.task_chunk,
            )
        finally:
            model.train(training)
        return self.fit(logits, truth)

    def fit(self, logits: list[Tensor], truth: Tensor) -> dict[str, object]:
        """Fit the calibration on the calibration set's logits under each seen task.

        Args:
            logits: per seen task, the calibration samples' logits ``(N, k_task)``.
            truth: ``(N,)`` 0-based true task of each sample.
        """
        fitted = CALIBRATIONS.get(self.calibration)(self.scores(logits), truth)
        if fitted is None:
            return {}
        self.weight, self.bias = fitted
        return {
            "calibration": {
                "weight": [float(w) for w in self.weight],
                "bias": [float(b) for b in self.bias],
                "samples": int(truth.numel()),
            }
        }

    def scores(self, logits: list[Tensor]) -> Tensor:
        """``(N, T)`` calibrated scores of the seen tasks' logits."""
        scores = torch.stack([self.score(block) for block in logits], dim=1)
        if self.weight is not None:
            scores = affine(scores, self.weight.to(scores), self.bias.to(scores))
        return scores

    # -- prediction -------------------------------------------------------------------------

    def predict(self, model: ContinualModel, inputs: Tensor, *, seen: int) -> TaskPrediction:
        """Predict the task (per-task networks) and the class of every input, no task id."""
        heads = model.heads
        if not heads.per_task_network:
            logits = model(inputs, task_id=seen, stage=Stage.TEST).logits
            return TaskPrediction(task=None, logits=logits, labels=logits.argmax(1))
        logits = task_logits(model, inputs, seen=seen, task_chunk=self.task_chunk)
        return self.predict_from_logits(heads, logits)

    def predict_from_logits(self, heads, logits: list[Tensor]) -> TaskPrediction:
        """A per-task network's prediction from its logits under each seen task."""
        task = predict_task(self.scores(logits))
        classes = torch.stack([block.argmax(1) for block in logits], dim=1)
        labels = classes.gather(1, task[:, None]).squeeze(1)
        if isinstance(heads, ClassIncrementalHeads):
            labels = labels + _offsets(heads, len(logits), like=labels)[task]
        chosen = _chosen_logits(logits, task)
        return TaskPrediction(task=task + 1, logits=chosen, labels=labels)

    def batch_counts(
        self, model: ContinualModel, inputs: Tensor, targets: Tensor, *, task_id: int, seen: int
    ) -> Tensor:
        """``[TAg correct, TAw correct, task-id correct]`` of a batch of task ``task_id`` (int64).

        ``targets`` are the task's own labels. Shared networks under ``dil`` count the task id
        as right (it is never predicted).
        """
        heads = model.heads
        if heads.per_task_network:
            logits = task_logits(model, inputs, seen=seen, task_chunk=self.task_chunk)
            return self.counts_from_logits(heads, logits, targets, task_id=task_id)
        prediction = self.predict(model, inputs, seen=seen)
        if isinstance(heads, ClassIncrementalHeads):
            start = heads.offset(task_id)
            truth = targets + start
            labels = prediction.labels
            own = (labels >= start) & (labels < start + _width(heads, task_id))
        else:
            truth = targets
            own = torch.ones_like(targets, dtype=torch.bool)
        agnostic = prediction.labels == truth
        aware = _task_aware_logits(model, inputs, task_id=task_id, prediction=prediction)
        return torch.stack([agnostic.sum(), (aware.argmax(1) == targets).sum(), own.sum()])

    def counts_from_logits(
        self, heads, logits: list[Tensor], targets: Tensor, *, task_id: int
    ) -> Tensor:
        """A per-task network's counts of a batch of task ``task_id`` from its task logits."""
        prediction = self.predict_from_logits(heads, logits)
        truth = targets
        if isinstance(heads, ClassIncrementalHeads):
            truth = targets + heads.offset(task_id)
        agnostic = prediction.labels == truth
        aware = logits[task_id - 1].argmax(1) == targets
        return torch.stack([agnostic.sum(), aware.sum(), (prediction.task == task_id).sum()])


def calibration_logits(
    model: ContinualModel,
    tasks: Sequence[TaskData],
    *,
    per_class: int,
    seed: int,
    batch_size: int,
    task_chunk: int = DEFAULT_TASK_CHUNK,
) -> tuple[list[Tensor], Tensor]:
    """Logits of the calibration set (kept validation samples) under each seen task.

    Returns:
        per seen task, ``(N, k_task)`` logits of all N calibration samples, and their 0-based
        true tasks ``(N,)``.
    """
    like = next(model.parameters())
    seen = len(tasks)
    batches, truth = [], []
    for position, task in enumerate(tasks):
        labels = _labels(task.val.y)
        index = calibration_indices(labels, per_class=per_class, seed=seed, task_id=task.task_id)
        for start in range(0, len(index), batch_size):
            chunk = index[start : start + batch_size]
            inputs = task.val.x[chunk].to(device=like.device, dtype=like.dtype)
            batches.append(task_logits(model, inputs, seen=seen, task_chunk=task_chunk))
            truth.append(torch.full((len(chunk),), position, device=like.device))
    if not batches:
        raise ValueError("cil.calibration=affine needs validation samples: data.val_fraction > 0")
    logits = [torch.cat([batch[t] for batch in batches]) for t in range(seen)]
    return logits, torch.cat(truth)


def task_logits(
    model: ContinualModel, inputs: Tensor, *, seen: int, task_chunk: int = DEFAULT_TASK_CHUNK
) -> list[Tensor]:
    """Logits of ``inputs`` under each seen task 1..seen, up to ``task_chunk`` tasks per forward
    (:func:`hatcl.inference.batched.task_logits`)."""
    return _batched_task_logits(model, inputs, seen=seen, task_chunk=task_chunk)


def _task_aware_logits(
    model: ContinualModel, inputs: Tensor, *, task_id: int, prediction: TaskPrediction
) -> Tensor:
    """A shared network's logits of task ``task_id`` given its id (reusing the prediction's)."""
    heads = model.heads
    if isinstance(heads, ClassIncrementalHeads):
        return heads.block(prediction.logits, task_id)
    if not model.backbone.depends_on_task():
        return prediction.logits
    return model(inputs, task_id=task_id, stage=Stage.TEST).logits


def _chosen_logits(logits: list[Tensor], task: Tensor) -> Tensor:
    """Each sample's logits of its predicted task (padded with -inf to the widest block)."""
    width = max(block.shape[1] for block in logits)
    padded = torch.stack(
        [torch.nn.functional.pad(b, (0, width - b.shape[1]), value=float("-inf")) for b in logits],
        dim=1,
    )
    return padded[torch.arange(len(task), device=task.device), task]


def _offsets(heads: ClassIncrementalHeads, seen: int, *, like: Tensor) -> Tensor:
    return torch.tensor([heads.offset(t) for t in range(1, seen + 1)], device=like.device)


def _width(heads: ClassIncrementalHeads, task_id: int) -> int:
    return heads.head(task_id).out_features


def _labels(labels) -> Tensor:
    return labels if isinstance(labels, Tensor) else labels[torch.arange(len(labels))]
