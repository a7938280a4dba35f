"""One training step in the order of docs/spec.md §3: the only place that order is written.

The Lightning loop (:class:`hatcl.training.module.ContinualModule`), the benchmarks and the tests
that train by hand all call :func:`run_training_step`; the facade for any loop
(:class:`hatcl.learner.Learner`) calls its phases in the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from hatcl.algorithms.base import Algorithm, StepContext
from hatcl.backbones.base import BackboneOutput
from hatcl.backbones.model import ContinualModel, ModelOutput
from hatcl.masking.stage import Stage


@dataclass(frozen=True)
class StepResult:
    """The step's total loss (with the algorithm's terms) and the context its hooks saw."""

    loss: torch.Tensor
    context: StepContext


def run_training_step(
    *,
    model: ContinualModel,
    algorithm: Algorithm,
    optimizer,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    task_id: int,
    batch_index: int,
    num_batches: int,
    task_ids: torch.Tensor | None = None,
    backward: Callable[[torch.Tensor], None] | None = None,
    check_finite: bool = False,
) -> StepResult:
    """Zero grads, forward, loss, backward, adjust, compensate, optimizer step, after-step.

    Args:
        optimizer: anything with ``zero_grad(set_to_none=)`` and ``step()`` (a torch optimizer
            or Lightning's wrapper of one).
        task_ids: per-sample task ids of a mixed-task batch (each sample through its own head).
        backward: how to back-propagate the loss (Lightning's ``manual_backward``; default
            ``loss.backward()``).
        check_finite: compute, before the optimizer step, a 0-dim bool tensor "every gradient
            of the optimizer's parameters is finite" and pass it to ``after_optimizer_step`` as
            ``context.gradients_finite`` (no host sync). Set it when the optimizer step may be
            skipped by a grad scaler (``16-mixed``): a skipped step then changes no importance.
    """
    optimizer.zero_grad(set_to_none=True)
    context = training_forward(
        model=model,
        algorithm=algorithm,
        inputs=inputs,
        targets=targets,
        task_id=task_id,
        batch_index=batch_index,
        num_batches=num_batches,
        task_ids=task_ids,
    )
    loss = add_loss_terms(
        algorithm, context, F.cross_entropy(context.output.logits, context.targets)
    )
    if backward is None:
        loss.backward()
    else:
        backward(loss)
    before_optimizer_step(algorithm, context)
    if check_finite:
        context = replace(context, gradients_finite=gradients_finite(optimizer))
    optimizer.step()
    after_optimizer_step(algorithm, context)
    return StepResult(loss=loss, context=context)


# The phases below are the steps of docs/spec.md §3 in pieces, for loops that own the optimizer
# and the loss themselves (:class:`hatcl.learner.Learner`); :func:`run_training_step` chains them.


def training_forward(
    *,
    model: ContinualModel,
    algorithm: Algorithm,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    task_id: int,
    batch_index: int,
    num_batches: int,
    task_ids: torch.Tensor | None = None,
) -> StepContext:
    """Step 2: the forward with the annealed training masks; returns the step's context.

    The context's targets are those the logits are scored against (the heads'
    ``training_targets``: global labels for a shared network under ``head=cil``).
    """
    scale = algorithm.training_scale(batch_index=batch_index, num_batches=num_batches)
    targets = model.heads.training_targets(targets, task_id=task_id, task_ids=task_ids)
    if task_ids is None:
        output = model(inputs, task_id=task_id, stage=Stage.TRAIN, scale=scale)
    else:
        output = grouped_forward(model, inputs, task_ids=task_ids, scale=scale)
    return StepContext(
        model=model,
        task_id=task_id,
        batch_index=batch_index,
        num_batches=num_batches,
        scale=scale,
        inputs=inputs,
        targets=targets,
        output=output,
        task_ids=task_ids,
    )


def add_loss_terms(
    algorithm: Algorithm, context: StepContext, loss: torch.Tensor | float
) -> torch.Tensor | float:
    """Step 3: ``loss`` plus the algorithm's loss terms, added one by one in their order."""
    for term in algorithm.loss_terms(context).values():
        loss = loss + term
    return loss


def before_optimizer_step(algorithm: Algorithm, context: StepContext) -> None:
    """Steps 5 and 6, after backward: gradient adjustment, then compensation."""
    algorithm.adjust_gradients(context)
    algorithm.compensate_gradients(context)


def after_optimizer_step(algorithm: Algorithm, context: StepContext) -> None:
    """Steps 8 and 9, after the optimizer step (clamps, importance observation)."""
    algorithm.after_optimizer_step(context)


def gradients_finite(optimizer) -> torch.Tensor | None:
    """0-dim bool tensor: every gradient of ``optimizer``'s parameters is finite (no host sync).

    The same test a grad scaler makes before it skips a step (inf or nan in any gradient);
    ``None`` if no parameter has a gradient.
    """
    grads = [p.grad for group in optimizer.param_groups for p in group["params"]]
    flags = [torch.isfinite(g).all() for g in grads if g is not None]
    if not flags:
        return None
    return torch.stack(flags).all()


def grouped_forward(
    model: ContinualModel, inputs: torch.Tensor, *, task_ids: torch.Tensor, scale: float | None
) -> ModelOutput:
    """Training forward of a mixed-task batch: each sample through its own task's head.

    A backbone whose forward does not depend on the task (no masks, no per-task norms) runs once
    on the whole batch; otherwise each task's samples run through it as one group. Each group's
    head produces its logits, padded with ``-inf`` to the widest head, so that cross-entropy and
    argmax over a row only ever see that sample's own head; everything is returned in batch
    order (per-task masks are not returned).
    """
    groups = [int(t) for t in torch.unique(task_ids).tolist()]
    indices = [torch.nonzero(task_ids == t).squeeze(1) for t in groups]
    inverse = torch.argsort(torch.cat(indices))
    if model.backbone.depends_on_task():
        outputs = [
            model(inputs[index], task_id=t, stage=Stage.TRAIN, scale=scale)
            for t, index in zip(groups, indices)
        ]
        backbone = _in_batch_order([out.backbone for out in outputs], inverse)
        logits = [out.logits for out in outputs]
    else:
        backbone = model.backbone(inputs, task_id=groups[0], stage=Stage.TRAIN, scale=scale)
        logits = [
            model.heads(backbone.features[index], task_id=t) for t, index in zip(groups, indices)
        ]
    width = max(group.shape[1] for group in logits)
    padded = [F.pad(group, (0, width - group.shape[1]), value=float("-inf")) for group in logits]
    return ModelOutput(logits=torch.cat(padded)[inverse], backbone=backbone)


def _in_batch_order(outputs: list[BackboneOutput], inverse: torch.Tensor) -> BackboneOutput:
    """Concatenate per-group backbone outputs and restore the batch order."""
    features = torch.cat([out.features for out in outputs])[inverse]
    activations = {
        key: torch.cat([out.activations[key] for out in outputs])[inverse]
        for key in outputs[0].activations
    }
    return BackboneOutput(features=features, activations=activations)
