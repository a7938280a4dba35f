"""``Learner(head="cil")``: global labels in training, ``predict(x)`` without a task id."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import hatcl
from hatcl.algorithms.finetuning import Finetuning
from hatcl.algorithms.hat import HAT
from hatcl.backbones.mlp import MLPBackbone

SIZES = (2, 3)


def _train(algorithm, *, head: str = "cil") -> tuple[hatcl.Learner, list[torch.Tensor]]:
    """Two tasks on separable toy data (task t's class c sits at its own spot)."""
    torch.manual_seed(0)
    backbone = MLPBackbone(input_shape=(4,), hidden_dims=(16,), masked=algorithm.uses_masks)
    learner = hatcl.Learner(backbone=backbone, algorithm=algorithm, head=head)
    inputs = []
    for task_id, size in enumerate(SIZES, start=1):
        y = torch.arange(size).repeat(20)
        x = torch.randn(len(y), 4) * 0.1
        x[torch.arange(len(y)), (y + task_id) % 4] += 3.0 * task_id
        inputs.append(x)
        learner.start_task(task_id, num_classes=size, num_batches=1)
        optimizer = torch.optim.Adam(learner.trainable_parameters(), lr=0.05)
        for _ in range(30):
            optimizer.zero_grad()
            logits = learner.forward(x, y)
            loss = F.cross_entropy(logits, learner.targets(y)) + learner.penalty()
            loss.backward()
            learner.before_optimizer_step()
            optimizer.step()
            learner.after_optimizer_step()
        learner.end_task()
    learner.eval()
    return learner, inputs


def test_a_shared_network_trains_on_global_labels_and_predicts_all_seen_classes():
    learner, inputs = _train(Finetuning())
    y = torch.tensor([0, 1, 2])
    assert learner.targets(y).tolist() == [2, 3, 4]  # task 2's classes follow task 1's two
    logits = learner.predict(inputs[1])
    assert logits.shape == (len(inputs[1]), 5)
    assert torch.equal(logits, learner.predict(inputs[1], task_id=2))  # one output space


def test_a_per_task_network_predicts_the_task_then_the_global_class():
    learner, inputs = _train(HAT())
    x = torch.cat(inputs)
    logits = learner.predict(x)
    assert logits.shape == (len(x), 5)
    finite = torch.isfinite(logits)
    in_first = finite[:, :2].all(1) & ~finite[:, 2:].any(1)
    in_second = finite[:, 2:].all(1) & ~finite[:, :2].any(1)
    assert bool((in_first | in_second).all())  # exactly one task's block per sample
    prediction = learner.evaluator.predict(learner.model, x, seen=2)
    assert torch.equal(logits.argmax(1), prediction.labels)
    for task_id, start in ((1, 0), (2, 2)):
        rows = prediction.task == task_id
        own = learner.predict(x[rows], task_id=task_id)
        assert torch.equal(logits[rows, start : start + own.shape[1]], own)


def test_predict_without_a_task_id_needs_a_head_without_one():
    learner, inputs = _train(Finetuning(), head="til")
    with pytest.raises(ValueError, match="head='cil' or 'dil'"):
        learner.predict(inputs[0])
