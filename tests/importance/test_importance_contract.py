"""The measure contract, for every registered importance type (attribution entries included).

After a real training step (forward with annealed masks, backward) on task 2 of a linear and of
a conv network: the result has one finite, non-negative, detached ``(units,)`` tensor per mask
key, and the measure leaves parameters, gradients, train/eval flags and the RNG untouched.
"""

import pytest
import torch
import torch.nn.functional as F

from hatcl.importance.base import ImportanceContext, ImportanceMeasure
from hatcl.importance.registry import IMPORTANCE_TYPES
from hatcl.masking.stage import Stage


def _step_context(model, inputs, targets, *, task_id=2, scale=3.0):
    output = model(inputs, task_id=task_id, stage=Stage.TRAIN, scale=scale)
    F.cross_entropy(output.logits, targets).backward()
    return ImportanceContext(
        model=model, task_id=task_id, inputs=inputs, targets=targets, scale=scale, output=output
    )


def _snapshot(model):
    return (
        {n: p.detach().clone() for n, p in model.named_parameters()},
        {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
        {n: m.training for n, m in model.named_modules()},
        torch.get_rng_state(),
    )


def _check(measure, model, ctx):
    before = _snapshot(model)
    result = measure.compute(ctx)
    after = _snapshot(model)
    units = model.backbone.unit_counts()
    assert set(result) == set(units)
    for key, value in result.items():
        assert value.shape == (units[key],), key
        assert torch.isfinite(value).all(), key
        assert (value >= 0).all(), key
        assert not value.requires_grad, key
    for old, new in zip(before[0:2], after[0:2]):
        assert old.keys() == new.keys()
        assert all(torch.equal(old[n], new[n]) for n in old)
    assert before[2] == after[2]
    assert torch.equal(before[3], after[3])


@pytest.mark.parametrize("name", IMPORTANCE_TYPES.names())
@pytest.mark.parametrize("training", [True, False])
def test_contract_linear(name, training, mlp_model):
    mlp_model.setup_task(task_id=2, num_classes=3)
    mlp_model.train(training)
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(12, 3, generator=generator)
    targets = torch.arange(12) % 3
    measure = IMPORTANCE_TYPES.get(name)
    assert isinstance(measure, ImportanceMeasure)
    _check(measure, mlp_model, _step_context(mlp_model, inputs, targets))


@pytest.mark.parametrize("name", IMPORTANCE_TYPES.names())
def test_contract_conv(name, conv_model):
    conv_model.setup_task(task_id=2, num_classes=3)
    generator = torch.Generator().manual_seed(2)
    inputs = torch.randn(12, 1, 3, 3, generator=generator)
    targets = torch.arange(12) % 3
    _check(IMPORTANCE_TYPES.get(name), conv_model, _step_context(conv_model, inputs, targets))
