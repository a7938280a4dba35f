"""hatcl.Learner keeps the order of its calls: a skipped or repeated phase raises, naming it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import hatcl
from hatcl.algorithms.hat import HAT
from hatcl.backbones.mlp import MLPBackbone
from hatcl.learner import ORDER

X, Y = torch.randn(8, 6), torch.randint(0, 3, (8,))


def _learner() -> hatcl.Learner:
    torch.manual_seed(0)
    backbone = MLPBackbone(input_shape=(6,), hidden_dims=(5, 4))
    return hatcl.Learner(backbone=backbone, algorithm=HAT())


def _step(learner, optimizer, *, skip: str = "") -> None:
    optimizer.zero_grad()
    loss = F.cross_entropy(learner(X, Y), Y) + learner.penalty()
    loss.backward()
    if skip != "before_optimizer_step":
        learner.before_optimizer_step()
    optimizer.step()
    if skip != "after_optimizer_step":
        learner.after_optimizer_step()


def _started():
    learner = _learner()
    learner.start_task(1, num_classes=3, num_batches=1)
    return learner, torch.optim.SGD(learner.trainable_parameters(), lr=0.1)


def test_the_documented_order_runs():
    learner, optimizer = _started()
    _step(learner, optimizer)
    _step(learner, optimizer)
    learner.end_task()
    assert learner.predict(X, task_id=1).shape == (8, 3)
    learner.start_task(2, num_classes=3, num_batches=1)


def test_a_skipped_before_optimizer_step_raises_at_after_optimizer_step():
    learner, optimizer = _started()
    with pytest.raises(RuntimeError, match=r"after_optimizer_step\(\) called after") as e:
        _step(learner, optimizer, skip="before_optimizer_step")
    assert ORDER in str(e.value) and "without protection" in str(e.value)


def test_a_skipped_after_optimizer_step_raises_at_the_next_forward():
    learner, optimizer = _started()
    _step(learner, optimizer, skip="after_optimizer_step")
    with pytest.raises(RuntimeError, match=r"learner.forward\(\) called after learner.before_opt"):
        learner(X, Y)


def test_a_repeated_start_task_raises():
    learner, _ = _started()
    with pytest.raises(RuntimeError, match=r"learner.start_task\(\) called after learner.start"):
        learner.start_task(2, num_classes=3, num_batches=1)


def test_end_task_in_the_middle_of_a_step_raises():
    learner, _ = _started()
    learner(X, Y)
    with pytest.raises(RuntimeError, match=r"learner.end_task\(\) called after learner.forward"):
        learner.end_task()


def test_a_repeated_end_task_raises():
    learner, optimizer = _started()
    _step(learner, optimizer)
    learner.end_task()
    with pytest.raises(RuntimeError, match="start_task"):
        learner.end_task()


def test_predict_before_end_task_says_so():
    learner, optimizer = _started()
    _step(learner, optimizer)
    with pytest.raises(RuntimeError, match=r"predict\(task_id=1\) before learner.end_task\(\)"):
        learner.predict(X, task_id=1)
