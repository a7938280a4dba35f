"""Attribution measures leave training state alone and use the current task's head."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.importance.attribution.measures import (
    SHARED_METHODS,
    AttributionImportance,
    attribution_measure,
)
from hatcl.importance.base import ImportanceContext
from hatcl.importance.registry import IMPORTANCE_TYPES
from hatcl.masking.stage import Stage

TYPES = {
    "gradient_x_activation_abs": "gradient_x_activation",
    "conductance_abs": "conductance",
    "internal_influence_abs": "internal_influence",
    "gradcam_abs": "gradcam",
    "deeplift_abs": "deeplift",
    "deepliftshap_abs": "deepliftshap",
    "gradientshap_abs": "gradientshap",
    "integrated_gradients_abs": "integrated_gradients",
    "feature_ablation_abs": "feature_ablation",
    "lrp_abs": "lrp",
}


def _trained_step(*, batch_norm: str = "shared", dropout: float = 0.3, task_id: int = 2):
    """A model after one training step of ``task_id`` and the step's importance context."""
    torch.manual_seed(0)
    backbone = MLPBackbone(
        input_shape=(12,), hidden_dims=(9, 7), batch_norm=batch_norm, dropout=dropout
    )
    model = ContinualModel(backbone=backbone, heads=TaskIncrementalHeads(input_dim=7))
    for task in (1, 2):
        model.setup_task(task_id=task, num_classes=3)
    model.train()
    x = torch.randn(16, 12)
    targets = torch.randint(0, 3, (16,))
    output = model(x, task_id=task_id, stage=Stage.TRAIN, scale=4.0)
    F.cross_entropy(output.logits, targets).backward()
    context = ImportanceContext(
        model=model, task_id=task_id, inputs=x, targets=targets, scale=4.0, output=output, step=3
    )
    return model, context


def _state(model):
    return {name: value.clone() for name, value in model.state_dict().items()}


@pytest.mark.parametrize("name", list(TYPES))
def test_registry_entry_computes_units_and_leaves_training_state(name):
    model, context = _trained_step()
    state = _state(model)
    grads = {name_: p.grad.clone() for name_, p in model.named_parameters() if p.grad is not None}
    modes = {name_: m.training for name_, m in model.named_modules()}
    torch.manual_seed(123)
    np.random.seed(7)
    expected_torch = torch.rand(3)
    expected_numpy = np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(7)

    importance = IMPORTANCE_TYPES.get(name).compute(context)

    assert torch.equal(torch.rand(3), expected_torch)
    assert np.array_equal(np.random.rand(3), expected_numpy)
    assert list(importance) == ["fc1", "fc2"]
    assert importance["fc1"].shape == (9,) and importance["fc2"].shape == (7,)
    for value in importance.values():
        assert torch.isfinite(value).all() and (value >= 0).all() and value.sum() > 0
    after = _state(model)
    assert all(torch.equal(state[key], after[key]) for key in state)  # incl. BN running stats
    for name_, p in model.named_parameters():
        if name_ in grads:
            assert torch.equal(p.grad, grads[name_])
        else:
            assert p.grad is None
    assert {name_: m.training for name_, m in model.named_modules()} == modes
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
        assert not module._backward_hooks
        for attribute in ("rule", "activations", "input", "output"):
            assert attribute not in module.__dict__


def test_modes_grads_and_rng_restored_when_an_attribution_raises(monkeypatch):
    model, context = _trained_step()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    def broken(problem, x, targets):
        torch.rand(5)  # consumes the (forked) stream
        problem.bound(x)
        raise RuntimeError("boom")

    monkeypatch.setitem(SHARED_METHODS, "deeplift", SHARED_METHODS["deeplift"].__class__(broken, 2))
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    with pytest.raises(RuntimeError, match="boom"):
        AttributionImportance(method="deeplift")(context)
    assert torch.equal(torch.rand(2), expected)
    assert all(module.training for module in model.modules())
    assert all(torch.equal(p.grad, grads[n]) for n, p in model.named_parameters() if n in grads)


def test_works_when_called_under_no_grad():
    model, context = _trained_step(batch_norm="none", dropout=0.0)
    with torch.no_grad():
        importance = IMPORTANCE_TYPES.get("gradient_x_activation_abs").compute(context)
    assert importance["fc2"].sum() > 0


def test_uses_the_current_tasks_head_and_training_masks():
    """Gradient x activation at the last layer is |W_head[target] * h| of task 2's head."""
    model, context = _trained_step(batch_norm="none", dropout=0.0, task_id=2)
    importance = IMPORTANCE_TYPES.get("gradient_x_activation_abs").compute(context)
    with torch.no_grad():
        model.eval()
        h = model(context.inputs, task_id=2, stage=Stage.TRAIN, scale=4.0).backbone.activations
        expected = {
            task: (model.heads.head(task).weight[context.targets] * h["fc2"]).abs().mean(0)
            for task in (1, 2)
        }
    torch.testing.assert_close(importance["fc2"], expected[2])
    assert not torch.allclose(importance["fc2"], expected[1])


def test_eval_mode_attribution_ignores_dropout_and_uses_running_stats():
    model, context = _trained_step(batch_norm="shared", dropout=0.5)
    first = IMPORTANCE_TYPES.get("gradient_x_activation_abs").compute(context)
    second = IMPORTANCE_TYPES.get("gradient_x_activation_abs").compute(context)
    for key in first:
        assert torch.equal(first[key], second[key])


def test_random_measures_are_deterministic_per_step_and_vary_across_steps():
    model, context = _trained_step(batch_norm="none", dropout=0.0)
    for name in ("gradientshap_abs", "deepliftshap_abs"):
        measure = IMPORTANCE_TYPES.get(name)
        again = measure.compute(context)
        same = measure.compute(context)
        other = measure.compute(ImportanceContext(**{**context.__dict__, "step": context.step + 1}))
        assert torch.equal(again["fc1"], same["fc1"])
        assert not torch.equal(again["fc1"], other["fc1"])


@pytest.mark.parametrize("method", list(SHARED_METHODS))
def test_captum_per_layer_implementation_gives_the_same_importance(method):
    model, context = _trained_step(batch_norm="shared", dropout=0.2)
    fast = attribution_measure(method, internal_batch_size=40).compute(context)
    reference = attribution_measure(method, implementation="captum_per_layer").compute(context)
    for key in reference:
        torch.testing.assert_close(fast[key], reference[key], rtol=1e-5, atol=1e-8)


def test_invalid_options_are_rejected_with_the_valid_choices():
    with pytest.raises(ValueError, match="valid: gradient_x_activation"):
        AttributionImportance(method="saliency")
    with pytest.raises(ValueError, match="shared, captum_per_layer"):
        AttributionImportance(method="lrp", implementation="fast")
    with pytest.raises(ValueError, match="internal_batch_size"):
        AttributionImportance(method="lrp", internal_batch_size=0)


def test_every_attribution_type_is_registered():
    assert set(TYPES) <= set(IMPORTANCE_TYPES.names())
    for name, method in TYPES.items():
        assert IMPORTANCE_TYPES.get(name).compute.method == method
