"""WSN: the straight-through gradient against autograd of the spec's formula, earlier tasks
bit-identical after later tasks on several backbones, the reported fractions, refusals."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hatcl import wrap
from hatcl.algorithms.wsn import WSN
from hatcl.backbones.cnn import CNNBackbone
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.masking.stage import Stage
from hatcl.training.step import run_training_step


def _model(backbone):
    return ContinualModel(
        backbone=backbone, heads=TaskIncrementalHeads(input_dim=backbone.output_dim)
    )


def _top(scores, fraction):
    """The spec's top-c by value, written with a full sort."""
    k = max(1, round(fraction * scores.numel()))
    threshold = torch.sort(scores.flatten(), descending=True).values[k - 1]
    return scores >= threshold


def test_score_gradient_is_the_masked_weight_gradient_times_the_weight():
    torch.manual_seed(0)
    model = _model(MLPBackbone(input_shape=(4,), hidden_dims=(5,), masked=False))
    algorithm = WSN(mask_fraction=0.4)
    algorithm.configure_model(model=model)
    model.setup_task(task_id=1, num_classes=3)
    layer = model.backbone.linears[0]
    original = layer.parametrizations.weight.original
    score = layer.parametrizations.weight[0].score
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    F.cross_entropy(model(x, task_id=1, stage=Stage.TRAIN).logits, y).backward()

    # oracle: W_eff = W * m as a leaf, the rest of the forward written out
    mask = _top(score.detach(), 0.4)
    assert int(mask.sum()) == round(0.4 * 20)
    effective = (original.detach() * mask).requires_grad_()
    bias_mask = _top(layer.parametrizations.bias[0].score.detach(), 0.4)
    bias = layer.parametrizations.bias.original.detach() * bias_mask
    hidden = torch.relu(x @ effective.T + bias)
    head = model.heads.head(1)
    F.cross_entropy(hidden @ head.weight.detach().T + head.bias.detach(), y).backward()
    assert torch.allclose(score.grad, effective.grad * original.detach(), atol=1e-7)
    assert torch.allclose(original.grad, effective.grad * mask, atol=1e-7)


def _custom_backbone():
    net = nn.Sequential(
        nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU()
    )
    return wrap(net, torch.zeros(2, 1, 4, 4), masked=False)


BACKBONES = {
    "mlp_per_task_norm": lambda: MLPBackbone(
        input_shape=(1, 4, 4), hidden_dims=(8, 6), batch_norm="independent", masked=False
    ),
    "cnn": lambda: CNNBackbone(
        input_shape=(1, 4, 4), channels=(2, 3), kernel_sizes=(2, 2), fc_dims=(8,), masked=False
    ),
    "custom": _custom_backbone,
}


@pytest.mark.parametrize("name", list(BACKBONES))
def test_earlier_tasks_logits_are_bit_identical_after_later_tasks(name):
    torch.manual_seed(1)
    model = _model(BACKBONES[name]())
    algorithm = WSN(mask_fraction=0.5)
    algorithm.configure_model(model=model)
    probe = torch.randn(5, 1, 4, 4)
    recorded = {}
    for task_id in (1, 2, 3):
        model.setup_task(task_id=task_id, num_classes=2)
        algorithm.on_task_start(task_id=task_id, model=model)
        # weight decay and momentum would move frozen weights if WSN did not hold them
        optimizer = torch.optim.SGD(
            algorithm.trainable_parameters(model), lr=0.1, momentum=0.9, weight_decay=0.1
        )
        model.train()
        for step in range(4):
            x = torch.randn(8, 1, 4, 4) + task_id
            y = torch.randint(0, 2, (8,))
            run_training_step(
                model=model,
                algorithm=algorithm,
                optimizer=optimizer,
                inputs=x,
                targets=y,
                task_id=task_id,
                batch_index=step,
                num_batches=4,
            )
        algorithm.on_task_end(task_id=task_id, model=model, task_data=None)
        model.eval()
        with torch.no_grad():
            for seen in range(1, task_id + 1):
                logits = model(probe, task_id=seen, stage=Stage.TEST).logits
                if seen in recorded:
                    assert torch.equal(logits, recorded[seen]), (name, seen, task_id)
                recorded[seen] = logits
    summary = algorithm.task_summary(task_id=3, model=model)["wsn"]
    assert 0.45 < summary["mask_fraction"] <= 0.55
    assert summary["mask_fraction"] <= summary["union_fraction"] <= 1.0
    assert 0.0 <= summary["reused_fraction"] <= 1.0


def test_reported_fractions_from_the_stored_masks():
    torch.manual_seed(2)
    model = _model(MLPBackbone(input_shape=(3,), hidden_dims=(4,), masked=False))
    algorithm = WSN(mask_fraction=0.25)
    algorithm.configure_model(model=model)
    masks = [model.backbone.linears[0].parametrizations[n][0] for n in ("weight", "bias")]
    for task_id in (1, 2):
        model.setup_task(task_id=task_id, num_classes=2)
        for mask in masks:  # new scores: a different top-c per task
            mask.score.data.normal_()
        algorithm.on_task_end(task_id=task_id, model=model, task_data=None)
    m1 = torch.cat([m.masks[0].flatten() for m in masks])
    m2 = torch.cat([m.masks[1].flatten() for m in masks])
    assert int(m1.sum()) == 3 + 1  # round(0.25 * 12) weights, round(0.25 * 4) biases
    summary = algorithm.task_summary(task_id=2, model=model)["wsn"]
    assert summary["mask_fraction"] == pytest.approx(4 / 16)
    assert summary["union_fraction"] == pytest.approx(float((m1 | m2).sum()) / 16)
    assert summary["reused_fraction"] == pytest.approx(float((m1 & m2).sum()) / 4)


def test_shared_batch_norm_is_refused():
    model = _model(
        MLPBackbone(input_shape=(3,), hidden_dims=(4,), batch_norm="shared", masked=False)
    )
    with pytest.raises(ValueError, match="batch_norm=independent"):
        WSN().configure_model(model=model)


@pytest.mark.parametrize("fraction", [0.0, 1.5, "half"])
def test_mask_fraction_is_validated(fraction):
    with pytest.raises(ValueError, match="mask_fraction"):
        WSN(mask_fraction=fraction)


def test_state_dict_round_trip_keeps_masks_and_frozen_parameters():
    torch.manual_seed(3)
    model = _model(MLPBackbone(input_shape=(3,), hidden_dims=(4,), masked=False))
    algorithm = WSN()
    algorithm.configure_model(model=model)
    model.setup_task(task_id=1, num_classes=2)
    x = torch.randn(4, 3)
    F.cross_entropy(
        model(x, task_id=1, stage=Stage.TRAIN).logits, torch.tensor([0, 1, 0, 1])
    ).backward()
    algorithm.on_task_end(task_id=1, model=model, task_data=None)
    other = _model(MLPBackbone(input_shape=(3,), hidden_dims=(4,), masked=False))
    twin = WSN()
    twin.configure_model(model=other)
    other.setup_task(task_id=1, num_classes=2)
    other.load_state_dict(model.state_dict())
    twin.load_state_dict(algorithm.state_dict())
    assert twin._frozen == algorithm._frozen == {"heads.heads.1.weight", "heads.heads.1.bias"}
    with torch.no_grad():
        assert torch.equal(
            other(x, task_id=1, stage=Stage.TEST).logits,
            model(x, task_id=1, stage=Stage.TEST).logits,
        )
