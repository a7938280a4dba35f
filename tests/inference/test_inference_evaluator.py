"""Task-agnostic prediction and counts on a hand-built model with a planted task predictor."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from torch import nn

from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.functional.task_scores import max_logit
from hatcl.heads.heads import ClassIncrementalHeads, DomainIncrementalHead
from hatcl.inference.calibration import calibration_indices
from hatcl.inference.config import CilConfig
from hatcl.inference.evaluator import TaskAgnosticEvaluator
from hatcl.inference.registries import resolve_task_score
from hatcl.masking.stage import Stage

SIZES = (4, 3, 3)


class Planted(nn.Module):
    """A model whose logits under every task but the true one are pushed down by 1000.

    With ``max_logit`` the task is then always predicted right: a perfect task predictor.
    """

    def __init__(self, model: ContinualModel, true_task: int) -> None:
        super().__init__()
        self.model, self.true_task = model, true_task
        self.heads, self.backbone = model.heads, model.backbone

    def forward(self, x, *, task_id, stage, scale=None):
        out = self.model(x, task_id=task_id, stage=stage, scale=scale)
        shift = 0.0 if task_id == self.true_task else -1000.0
        return type(out)(logits=out.logits + shift, backbone=out.backbone)


def _model(heads_class=ClassIncrementalHeads, *, per_task_network=True) -> ContinualModel:
    torch.manual_seed(0)
    backbone = MLPBackbone(input_shape=(6,), hidden_dims=(8,), masked=False)
    heads = heads_class(input_dim=backbone.output_dim, per_task_network=per_task_network)
    model = ContinualModel(backbone=backbone, heads=heads)
    shared = heads_class is DomainIncrementalHead
    for task_id, size in enumerate(SIZES, start=1):
        model.setup_task(task_id=task_id, num_classes=3 if shared else size)
    return model.eval()


@pytest.mark.parametrize("true_task", [1, 2, 3])
def test_with_a_perfect_task_predictor_task_agnostic_equals_task_aware(true_task):
    model = Planted(_model(), true_task)
    inputs = torch.randn(64, 6)
    targets = torch.randint(0, SIZES[true_task - 1], (64,))
    counts = TaskAgnosticEvaluator(score=max_logit).batch_counts(
        model, inputs, targets, task_id=true_task, seen=3
    )
    # TAw counted by hand: the true task's block, argmax against the task's own labels
    aware = (model.model(inputs, task_id=true_task, stage=Stage.TEST).logits.argmax(1) == targets)
    assert 0 < int(aware.sum()) < 64  # random weights: a non-trivial within-task accuracy
    assert counts.tolist() == [int(aware.sum()), int(aware.sum()), 64]


def test_predicted_global_labels_are_offset_by_the_predicted_task():
    model = Planted(_model(), 2)
    inputs = torch.randn(10, 6)
    prediction = TaskAgnosticEvaluator(score=max_logit).predict(model, inputs, seen=3)
    assert prediction.task.tolist() == [2] * 10
    within = model.model(inputs, task_id=2, stage=Stage.TEST).logits.argmax(1)
    assert prediction.labels.tolist() == (within + 4).tolist()


def test_counts_are_bounded_by_task_aware_and_task_id_hits():
    model = _model()
    inputs = torch.randn(200, 6)
    targets = torch.randint(0, 3, (200,))
    tag, taw, task = TaskAgnosticEvaluator(score=max_logit).batch_counts(
        model, inputs, targets, task_id=3, seen=3
    ).tolist()
    assert tag <= taw and tag <= task


def test_a_shared_network_predicts_over_all_seen_classes():
    model = _model(per_task_network=False)
    inputs = torch.randn(50, 6)
    targets = torch.randint(0, 3, (50,))
    logits = model(inputs, task_id=3, stage=Stage.TEST).logits  # all ten classes
    counts = TaskAgnosticEvaluator(score=max_logit).batch_counts(
        model, inputs, targets, task_id=2, seen=3
    )
    predicted = logits.argmax(1)
    tag = int((predicted == targets + 4).sum())
    taw = int((logits[:, 4:7].argmax(1) == targets).sum())
    own = int(((predicted >= 4) & (predicted < 7)).sum())
    assert counts.tolist() == [tag, taw, own]


def test_under_dil_a_class_can_be_right_under_a_wrongly_predicted_task():
    model = _model(DomainIncrementalHead)
    inputs = torch.randn(30, 6)
    targets = torch.randint(0, 3, (30,))
    evaluator = TaskAgnosticEvaluator(score=max_logit)
    prediction = evaluator.predict(model, inputs, seen=3)
    # the shared head: every task's logits are the same here (an unmasked backbone)
    assert prediction.task.tolist() == [1] * 30  # ties go to the lower task
    tag, taw, task = evaluator.batch_counts(model, inputs, targets, task_id=2, seen=3).tolist()
    assert task == 0 and tag == taw == int((prediction.labels == targets).sum())


def test_the_calibration_set_is_seeded_per_class_and_kept_as_indices():
    labels = torch.tensor([0, 1] * 30 + [1] * 5)
    first = calibration_indices(labels, per_class=7, seed=3, task_id=2)
    assert torch.equal(first, calibration_indices(labels, per_class=7, seed=3, task_id=2))
    assert not torch.equal(first, calibration_indices(labels, per_class=7, seed=4, task_id=2))
    assert torch.bincount(labels[first]).tolist() == [7, 7]
    assert torch.equal(first, torch.sort(first).values) and len(set(first.tolist())) == 14
    few = calibration_indices(torch.tensor([0, 0, 1]), per_class=5, seed=3, task_id=1)
    assert few.tolist() == [0, 1, 2]


def test_a_task_score_by_import_path(tmp_path, monkeypatch):
    (tmp_path / "my_scores.py").write_text(
        textwrap.dedent(
            """
            def margin(logits):
                top = logits.topk(2, dim=-1).values
                return top[:, 0] - top[:, 1]
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    score = resolve_task_score("my_scores:margin")
    assert score(torch.tensor([[1.0, 4.0, 2.5]])).tolist() == [1.5]
    assert CilConfig(task_score="my_scores:margin").task_score == "my_scores:margin"
    sys.modules.pop("my_scores", None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"task_score": "softmax"}, "valid choices are: max_softmax"),
        ({"task_score": "no_such_module_x:fn"}, "cannot import module 'no_such_module_x'"),
        ({"task_score": "math:no_fn"}, "has no function 'no_fn'"),
        ({"calibration": "platt"}, "valid choices are: none, affine"),
        ({"calibration_per_class": 0}, "cil.calibration_per_class"),
    ],
)
def test_bad_cil_options_are_refused_with_what_is_valid(options, message):
    with pytest.raises(ValueError, match=message):
        CilConfig(**options)
