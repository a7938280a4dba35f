"""HAT's invariant on the conv backbones: training task 2 leaves task 1's test logits unchanged."""

from __future__ import annotations

import pytest
import torch

from hatcl.algorithms.finetuning import Finetuning
from hatcl.algorithms.hat import HAT

KINDS = ("cnn", "resnet18")


def _weighted_parameters(model) -> dict[str, torch.Tensor]:
    backbone = model.backbone
    result = {}
    for layer, module in backbone.layer_modules():
        for name, parameter in module.named_parameters(recurse=False):
            result[f"{layer.name}.{name}"] = parameter.detach().clone()
    return result


def _two_tasks(kit, kind: str, *, batch_norm: str, algorithm, masked: bool):
    model = kit.tiny_model(kind, batch_norm=batch_norm, masked=masked)
    probe = kit.task_batches(kind, seed=99, batches=1, batch_size=32)[0][0]
    kit.train_task(model, algorithm, task_id=1, batches=kit.task_batches(kind, seed=1, batches=4))
    before = kit.task_logits(model, probe, task_id=1)
    weights = _weighted_parameters(model)
    kit.train_task(model, algorithm, task_id=2, batches=kit.task_batches(kind, seed=2, batches=4))
    after = kit.task_logits(model, probe, task_id=1)
    moved = [
        name
        for name, value in _weighted_parameters(model).items()
        if not torch.equal(value, weights[name])
    ]
    return model, before, after, moved


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_norm", ["none", "independent"])
def test_hat_keeps_task_one_logits_exactly(kit, kind, batch_norm):
    model, before, after, moved = _two_tasks(
        kit, kind, batch_norm=batch_norm, algorithm=HAT(), masked=True
    )
    assert torch.equal(before, after)
    # Non-trivial: task 1 used part of every layer and task 2 really moved backbone weights,
    # including ones of units task 1 uses (their inputs outside the cumulative mask).
    used = model.backbone.masker.store.mask(1)
    fractions = [float(mask.mean()) for mask in used.values()]
    assert 0.0 < min(fractions) and max(fractions) < 1.0
    assert moved
    assert before.abs().sum() > 0


@pytest.mark.parametrize("kind", KINDS)
def test_hat_with_shared_batch_norm_changes_task_one_logits(kit, kind):
    # One batch norm for all tasks: task 2 updates its running statistics (and affine
    # parameters, which no mask covers), so task 1's test outputs drift. That is why the
    # HAT family needs batch_norm none or independent.
    _, before, after, _ = _two_tasks(kit, kind, batch_norm="shared", algorithm=HAT(), masked=True)
    assert not torch.equal(before, after)
    assert (before - after).abs().max() > 1e-6


@pytest.mark.parametrize("kind", KINDS)
def test_finetuning_changes_task_one_logits(kit, kind):
    _, before, after, moved = _two_tasks(
        kit, kind, batch_norm="none", algorithm=Finetuning(), masked=False
    )
    assert moved
    assert (before - after).abs().max() > 1e-4
