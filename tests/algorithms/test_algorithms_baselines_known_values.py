"""Known values of the baselines' math: EWC Fisher and penalty, LwF distillation."""

from __future__ import annotations

import math

import pytest
import torch

from hatcl.algorithms.base import StepContext
from hatcl.algorithms.ewc import EWC
from hatcl.algorithms.fisher import diagonal_fisher
from hatcl.algorithms.lwf import LwF
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.data.base import TaskData, TensorSplit
from hatcl.functional.distillation import distillation_loss
from hatcl.functional.ewc import ewc_penalty, merge_online, merge_separate
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.masking.stage import Stage

LN3 = math.log(3.0)


def _tiny_model() -> ContinualModel:
    """x (2) -> relu(x1 + x2) (1 unit) -> head 1: logits [h, 0]."""
    backbone = MLPBackbone(input_shape=(2,), hidden_dims=(1,), masked=False)
    model = ContinualModel(backbone=backbone, heads=TaskIncrementalHeads(input_dim=1))
    model.setup_task(task_id=1, num_classes=2)
    with torch.no_grad():
        backbone.linears[0].weight.copy_(torch.tensor([[1.0, 1.0]]))
        backbone.linears[0].bias.zero_()
        model.heads.head(1).weight.copy_(torch.tensor([[1.0], [0.0]]))
        model.heads.head(1).bias.zero_()
    return model


def _tiny_task() -> TaskData:
    # Both samples give h = ln 3, so p = softmax([ln 3, 0]) = [3/4, 1/4]; labels 0 and 1.
    x = torch.tensor([[LN3, 0.0], [0.0, LN3]])
    y = torch.tensor([0, 1])
    split = TensorSplit(x=x, y=y)
    return TaskData(
        task_id=1, train=split, val=split, test=split, num_classes=2, class_labels=(0, 1)
    )


# Per-sample gradients by hand: dL/dlogits = p - onehot(y) = [-1/4, 1/4] and [3/4, -3/4];
# dL/dh = g . [1, 0] = -1/4 and 3/4; dL/dw = dL/dh * x; dL/da = g * h; dL/dc = g.
EXPECTED_FISHER = {
    "backbone.linears.0.weight": [[LN3**2 / 32, 9 * LN3**2 / 32]],
    "backbone.linears.0.bias": [5 / 16],
    "heads.heads.1.weight": [[5 * LN3**2 / 16], [5 * LN3**2 / 16]],
    "heads.heads.1.bias": [5 / 16, 5 / 16],
}


def test_diagonal_fisher_matches_hand_computation():
    model, task = _tiny_model(), _tiny_task()
    fisher = diagonal_fisher(model, inputs=task.train.x, targets=task.train.y, task_id=1)
    assert set(fisher) == set(EXPECTED_FISHER)
    for name, expected in EXPECTED_FISHER.items():
        torch.testing.assert_close(fisher[name], torch.tensor(expected), rtol=1e-5, atol=1e-7)


def test_diagonal_fisher_chunking_does_not_change_the_result():
    model, task = _tiny_model(), _tiny_task()
    whole = diagonal_fisher(model, inputs=task.train.x, targets=task.train.y, task_id=1)
    chunked = diagonal_fisher(
        model, inputs=task.train.x, targets=task.train.y, task_id=1, batch_size=1
    )
    for name in whole:
        torch.testing.assert_close(whole[name], chunked[name])


def test_ewc_penalty_after_consolidation_matches_hand_computation():
    model, task = _tiny_model(), _tiny_task()
    ewc = EWC(ewc_lambda=4.0)
    ewc.on_task_end(task_id=1, model=model, task_data=task)
    # move theta by delta: penalty = lambda / 2 * sum F delta^2
    with torch.no_grad():
        model.backbone.linears[0].weight.add_(torch.tensor([[0.5, -1.0]]))
        model.heads.head(1).bias.add_(torch.tensor([2.0, 0.0]))
    context = _context(model, task)
    expected = 0.5 * 4.0 * (LN3**2 / 32 * 0.25 + 9 * LN3**2 / 32 * 1.0 + 5 / 16 * 4.0)
    penalty = ewc.loss_terms(context)["ewc"]
    assert penalty.item() == pytest.approx(expected, rel=1e-5)
    # the gradient is lambda * F * delta
    penalty.backward()
    torch.testing.assert_close(
        model.backbone.linears[0].weight.grad,
        4.0 * torch.tensor([[LN3**2 / 32 * 0.5, 9 * LN3**2 / 32 * -1.0]]),
    )


def test_ewc_has_no_penalty_before_the_first_consolidation():
    model, task = _tiny_model(), _tiny_task()
    assert EWC().loss_terms(_context(model, task)) == {}


def test_separate_merge_equals_the_sum_of_per_task_penalties():
    gen = torch.Generator().manual_seed(0)
    f1, f2, a1, a2, theta = (torch.rand(5, generator=gen) for _ in range(5))
    f1[0] = 0.0  # one coordinate unused by task 1
    f1[1] = f2[1] = 0.0  # and one by both
    fisher, anchor, added = merge_separate(
        fisher=torch.zeros(5), anchor=torch.zeros(5), new_fisher=f1, new_anchor=a1, gamma=1.0
    )
    assert added.item() == 0.0
    fisher, anchor, added2 = merge_separate(
        fisher=fisher, anchor=anchor, new_fisher=f2, new_anchor=a2, gamma=1.0
    )
    merged = ewc_penalty([theta], anchors=[anchor], fishers=[fisher], offset=added2, ewc_lambda=2)
    oracle = (f1 * (theta - a1) ** 2).sum() + (f2 * (theta - a2) ** 2).sum()
    assert merged.item() == pytest.approx(oracle.item(), rel=1e-5)


def test_online_merge_decays_and_reanchors():
    fisher, anchor, added = merge_online(
        fisher=torch.tensor([2.0, 4.0]),
        anchor=torch.tensor([1.0, 1.0]),
        new_fisher=torch.tensor([1.0, 0.0]),
        new_anchor=torch.tensor([3.0, -1.0]),
        gamma=0.5,
    )
    torch.testing.assert_close(fisher, torch.tensor([2.0, 2.0]))
    torch.testing.assert_close(anchor, torch.tensor([3.0, -1.0]))
    assert added.item() == 0.0


def test_ewc_two_tasks_against_the_per_task_penalty_oracle():
    model, task = _tiny_model(), _tiny_task()
    task2 = TaskData(
        task_id=2,
        train=task.train,
        val=task.val,
        test=task.test,
        num_classes=2,
        class_labels=(0, 1),
    )
    separate = EWC(mode="separate", ewc_lambda=2.0)
    online = EWC(mode="online", gamma=0.5, ewc_lambda=2.0)
    snapshots = []
    for t, data in ((1, task), (2, task2)):
        if t == 2:
            model.setup_task(task_id=2, num_classes=2)
            with torch.no_grad():
                model.backbone.linears[0].bias.fill_(1.0)
                model.heads.head(2).weight.copy_(torch.tensor([[0.5], [-0.5]]))
        fisher = diagonal_fisher(model, inputs=data.train.x, targets=data.train.y, task_id=t)
        anchors = {n: p.detach().clone() for n, p in model.named_parameters()}
        snapshots.append((fisher, anchors))
        for ewc in (separate, online):
            ewc.on_task_end(task_id=t, model=model, task_data=data)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.3)
    context = _context(model, task)
    params = dict(model.named_parameters())
    oracle_separate = sum((f[n] * (params[n] - a[n]) ** 2).sum() for f, a in snapshots for n in f)
    (f1, _), (f2, a2) = snapshots
    oracle_online = sum(((0.5 * f1.get(n, 0) + f2[n]) * (params[n] - a2[n]) ** 2).sum() for n in f2)
    assert separate.loss_terms(context)["ewc"].item() == pytest.approx(
        oracle_separate.item(), rel=1e-4
    )
    assert online.loss_terms(context)["ewc"].item() == pytest.approx(oracle_online.item(), rel=1e-4)
    assert online.offset.item() == 0.0 < separate.offset.item()


def test_ewc_state_dict_round_trip_into_a_fresh_instance():
    model, task = _tiny_model(), _tiny_task()
    ewc = EWC(ewc_lambda=3.0)
    ewc.on_task_end(task_id=1, model=model, task_data=task)
    fresh = EWC(ewc_lambda=3.0)
    fresh.load_state_dict(ewc.state_dict())
    with torch.no_grad():
        model.heads.head(1).bias.add_(1.0)
    context = _context(model, task)
    assert fresh.loss_terms(context)["ewc"].item() == ewc.loss_terms(context)["ewc"].item() > 0


def test_ewc_fisher_samples_uses_a_subset():
    model = _tiny_model()
    x = torch.tensor([[LN3, 0.0], [0.0, LN3]]).repeat(50, 1)
    y = torch.tensor([0, 1]).repeat(50)
    task = TaskData(
        task_id=1,
        train=TensorSplit(x=x, y=y),
        val=TensorSplit(x=x, y=y),
        test=TensorSplit(x=x, y=y),
        num_classes=2,
        class_labels=(0, 1),
    )
    ewc = EWC(fisher_samples=10)
    ewc.on_task_end(task_id=1, model=model, task_data=task)
    fisher, _ = ewc.consolidated()["heads.heads.1.bias"]
    # each sample contributes 1/16 or 9/16 per entry: a 10-sample mean is k/160 for an int k
    value = fisher[0].item() * 160
    assert value == pytest.approx(round(value), abs=1e-3)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"mode": "offline"}, "mode"),
        ({"gamma": 0.9}, "gamma"),
        ({"ewc_lambda": -1.0}, "ewc_lambda"),
        ({"fisher_samples": 0}, "fisher_samples"),
    ],
)
def test_ewc_rejects_bad_options(options, match):
    with pytest.raises(ValueError, match=match):
        EWC(**options)


def test_distillation_loss_matches_hand_computation():
    student = torch.tensor([[0.0, 0.0], [2 * LN3, 0.0]])
    teacher = torch.tensor([[2 * LN3, 0.0], [0.0, 0.0]])
    # sample 1: target [3/4, 1/4], prediction [1/2, 1/2] -> ln 2
    # sample 2: target [1/2, 1/2], prediction [3/4, 1/4] -> -(ln(3/4) + ln(1/4)) / 2
    expected = (math.log(2.0) + 0.5 * math.log(16.0 / 3.0)) / 2
    loss = distillation_loss(student, teacher, temperature=2.0)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_distillation_loss_is_minimal_and_stationary_at_the_teacher():
    teacher = torch.tensor([[1.0, -2.0, 0.5]])
    student = teacher.clone().requires_grad_(True)
    loss = distillation_loss(student, teacher, temperature=2.0)
    loss.backward()
    probs = torch.softmax(teacher / 2.0, dim=-1)
    assert loss.item() == pytest.approx(-(probs * probs.log()).sum().item(), rel=1e-6)
    torch.testing.assert_close(student.grad, torch.zeros_like(student))


def test_lwf_distils_every_old_head_with_the_old_network():
    model, task = _tiny_model(), _tiny_task()
    model.setup_task(task_id=2, num_classes=2)
    lwf = LwF(distillation_weight=0.5, temperature=2.0)
    lwf.on_task_start(task_id=2, model=model)
    with torch.no_grad():
        model.heads.head(1).weight.copy_(torch.tensor([[0.0], [0.0]]))  # student head 1: [0, 0]
    output = model(task.train.x, task_id=2, stage=Stage.TRAIN)
    context = _context(model, task, task_id=2, output=output)
    # old head 1 logits: [ln 3, 0] for both samples; student now [0, 0]; T = 2
    old = torch.softmax(torch.tensor([LN3 / 2, 0.0]), dim=0)
    expected = 0.5 * -(old * math.log(0.5)).sum().item()
    assert lwf.loss_terms(context)["lwf"].item() == pytest.approx(expected, rel=1e-6)


def test_lwf_has_no_term_on_the_first_task():
    model, task = _tiny_model(), _tiny_task()
    lwf = LwF()
    lwf.on_task_start(task_id=1, model=model)
    assert lwf.loss_terms(_context(model, task)) == {}
    assert "_teacher" not in dict(lwf.named_modules())


def _context(model, task, *, task_id=1, output=None) -> StepContext:
    if output is None:
        output = model(task.train.x, task_id=task_id, stage=Stage.TRAIN)
    return StepContext(
        model=model,
        task_id=task_id,
        batch_index=0,
        num_batches=1,
        scale=None,
        inputs=task.train.x,
        targets=task.train.y,
        output=output,
    )
