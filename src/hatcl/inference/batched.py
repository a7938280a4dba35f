"""Logits of a test batch under each seen task: several tasks per forward where possible.

Task-agnostic inference needs, for every test input, the logits under every seen task. A
HAT-masked built-in backbone (``Backbone.per_sample_masks``) whose only task-dependent module is
its masker runs the batch under C tasks' stored masks in one forward (the batch repeated C times,
block c under task c's mask; ``masking/stacked.py``), C = ``task_chunk`` at most, so the memory
is that of a batch of ``task_chunk * N`` inputs. Anything else (per-task batch norms, per-task
networks, wrapped networks, models that are not a :class:`ContinualModel`) is run once per task.
Either way the cost is linear in the number of seen tasks and nothing is read on the host.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hatcl.backbones.model import ContinualModel
from hatcl.masking.masker import HATMasker
from hatcl.masking.stacked import stacked_masks
from hatcl.masking.stage import Stage

DEFAULT_TASK_CHUNK = 8
"""Tasks per forward by default (``cil.task_chunk``)."""


def stacks_tasks(model: object) -> bool:
    """Whether ``model`` can run several tasks' masks in one forward."""
    if not isinstance(model, ContinualModel):
        return False
    backbone = model.backbone
    masker = getattr(backbone, "masker", None)
    if not isinstance(masker, HATMasker) or not getattr(backbone, "per_sample_masks", False):
        return False
    return all(
        module is masker or not getattr(module, "task_specific", False)
        for module in backbone.modules()
    )


def task_logits(
    model: ContinualModel, inputs: Tensor, *, seen: int, task_chunk: int = DEFAULT_TASK_CHUNK
) -> list[Tensor]:
    """Logits of ``inputs`` under each seen task 1..seen, ``(N, k_task)`` per task.

    Args:
        model: the model in eval mode.
        inputs: a test batch.
        seen: the number of seen tasks.
        task_chunk: at most this many tasks per forward (1: one forward per task).
    """
    if task_chunk <= 1 or seen <= 1 or not stacks_tasks(model):
        return looped_task_logits(model, inputs, seen=seen)
    store = model.backbone.masker.store
    if store.task_ids.shape[0] < seen:  # a task without stored masks: the loop's error says so
        return looped_task_logits(model, inputs, seen=seen)
    stacks = store.stacks()
    device = next(iter(stacks.values())).device
    rows = store.rows(torch.arange(1, seen + 1, device=device))
    batch = inputs.shape[0]
    logits: list[Tensor] = []
    for first in range(1, seen + 1, task_chunk):
        tasks = range(first, min(first + task_chunk, seen + 1))
        masks = stacked_masks(stacks, rows[first - 1 : tasks[-1]], batch=batch)
        with model.backbone.masker.test_masks(masks):
            features = model.backbone(inputs, task_id=first, stage=Stage.TEST).features
        blocks = features.view(len(tasks), batch, *features.shape[1:])
        logits.extend(model.heads(block, task_id=t) for block, t in zip(blocks, tasks))
    return logits


def looped_task_logits(model: ContinualModel, inputs: Tensor, *, seen: int) -> list[Tensor]:
    """Logits of ``inputs`` under each seen task 1..seen: one forward per task."""
    return [model(inputs, task_id=t, stage=Stage.TEST).logits for t in range(1, seen + 1)]
