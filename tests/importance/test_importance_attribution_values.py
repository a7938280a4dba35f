"""Attribution values against hand-derived facts (independent of Captum)."""

from __future__ import annotations

import torch

from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.importance.attribution import shared
from hatcl.importance.attribution.bound import BoundLogits, activation_taps, attribution_guard
from hatcl.masking.stage import Stage


def _setup():
    torch.manual_seed(3)
    model = ContinualModel(
        backbone=MLPBackbone(input_shape=(5,), hidden_dims=(8, 6)),
        heads=TaskIncrementalHeads(input_dim=6),
    )
    model.setup_task(task_id=1, num_classes=4)
    problem = shared.AttributionProblem(
        bound=BoundLogits(model, task_id=1, stage=Stage.TRAIN, scale=6.0),
        taps=activation_taps(model),
        sequential=True,
    )
    x = torch.randn(6, 5)
    targets = torch.tensor([0, 1, 2, 3, 0, 1])
    with torch.no_grad():
        model.eval()
        out = model(x, task_id=1, stage=Stage.TRAIN, scale=6.0)
        zero = model(torch.zeros_like(x), task_id=1, stage=Stage.TRAIN, scale=6.0)
    return model, problem, x, targets, out, zero


def _target(logits, targets):
    return logits.gather(1, targets.view(-1, 1)).squeeze(1)


def test_last_layer_values_through_the_linear_head():
    model, problem, x, targets, out, _ = _setup()
    h = out.backbone.activations["fc2"]
    weight = model.heads.head(1).weight[targets]  # (batch, units)
    with attribution_guard(model):
        ablation = shared.feature_ablation(problem, x, targets)["fc2"]
        gxa = shared.gradient_x_activation(problem, x, targets)["fc2"]
        influence = shared.internal_influence(problem, x, targets)["fc2"]
        relevance = shared.lrp(problem, x, targets)["fc2"]
    # zeroing unit f removes exactly W[t, f] * h_f from the target logit
    torch.testing.assert_close(ablation, weight * h)
    torch.testing.assert_close(gxa, weight * h)
    # the gradient is constant (W[t]); Gauss-Legendre weights sum to 1
    torch.testing.assert_close(influence, weight, rtol=1e-5, atol=1e-6)
    # LRP-epsilon through a linear head: h_f W[t, f] z_t / (z_t + eps) ~ h_f W[t, f]
    torch.testing.assert_close(relevance, weight * h, rtol=1e-4, atol=1e-6)


def test_deeplift_sums_to_the_change_of_the_target_logit_at_every_layer():
    model, problem, x, targets, out, zero = _setup()
    delta = _target(out.logits, targets) - _target(zero.logits, targets)
    with attribution_guard(model):
        attributions = shared.deeplift(problem, x, targets)
    for key, value in attributions.items():
        torch.testing.assert_close(value.sum(1), delta, rtol=1e-5, atol=1e-5, msg=key)


def test_integrated_gradients_and_conductance_nearly_complete():
    model, problem, x, targets, out, zero = _setup()
    delta = _target(out.logits, targets) - _target(zero.logits, targets)
    with attribution_guard(model):
        integrated = shared.integrated_gradients(problem, x, targets)
        conductance = shared.conductance(problem, x, targets)
    for key in integrated:
        torch.testing.assert_close(integrated[key].sum(1), delta, rtol=0, atol=0.05)
        torch.testing.assert_close(conductance[key].sum(1), delta, rtol=0, atol=0.05)
    # h_fc2 -> logit is linear, so the layer's path integral is exact there
    torch.testing.assert_close(integrated["fc2"].sum(1), delta, rtol=1e-5, atol=1e-5)
