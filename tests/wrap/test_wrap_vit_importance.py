"""Every importance type on a wrapped ViT; attribution equals Captum per layer in float64.

Token-wise units (a Linear on ``(batch, tokens, features)``) are tapped as ``(batch, units,
tokens)``, so every type reduces over batch and tokens as it reduces over a conv's positions;
checked by hand for ``activation_abs`` below.
"""

from __future__ import annotations

import pytest
import torch
from transformer_nets import TinyViT

import hatcl
from hatcl.backbones.model import ContinualModel
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.importance.attribution import shared
from hatcl.importance.attribution.bound import BoundLogits, activation_taps, attribution_guard
from hatcl.importance.attribution.per_layer import captum_per_layer
from hatcl.importance.base import ImportanceContext
from hatcl.importance.registry import IMPORTANCE_TYPES
from hatcl.masking.stage import Stage

METHODS = [
    "gradient_x_activation",
    "gradcam",
    "deeplift",
    "deepliftshap",
    "conductance",
    "internal_influence",
    "integrated_gradients",
    "feature_ablation",
]


def _model(dtype=torch.float64):
    torch.manual_seed(0)
    x = torch.randn(4, 1, 8, 8)
    backbone = hatcl.wrap(TinyViT(depth=1), x, unmasked="per_task")
    model = ContinualModel(
        backbone=backbone, heads=TaskIncrementalHeads(input_dim=backbone.output_dim)
    )
    model.setup_task(task_id=1, num_classes=3)
    model.to(dtype)
    return model, x.to(dtype), torch.tensor([0, 2, 1, 2])


@pytest.mark.parametrize("method", METHODS)
def test_shared_attribution_equals_captum_per_layer_in_float64(method):
    model, x, targets = _model()
    problem = shared.AttributionProblem(
        bound=BoundLogits(model, task_id=1, stage=Stage.TRAIN, scale=3.0),
        taps=activation_taps(model),
        sequential=model.backbone.sequential_taps,
    )
    references = x[[2, 0, 1]]
    options = {"references": references} if method == "deepliftshap" else {}
    with attribution_guard(model), torch.no_grad():
        out = model(x, task_id=1, stage=Stage.TRAIN, scale=3.0)
        shapes = {key: tuple(v.shape[1:]) for key, v in out.backbone.activations.items()}
    with attribution_guard(model):
        ours = getattr(shared, method)(problem, x, targets, **options)
        reference = captum_per_layer(
            method, problem, x, targets, references=references, unit_shapes=shapes
        )
    assert list(ours) == list(model.backbone.masker.unit_counts)
    for key in reference:
        scale = float(reference[key].abs().max())
        torch.testing.assert_close(
            ours[key], reference[key], rtol=1e-5, atol=1e-9 * max(scale, 1e-6), msg=key
        )


def test_every_importance_type_runs_on_the_vit():
    model, x, targets = _model(torch.float32)
    model.train()
    output = model(x, task_id=1, stage=Stage.TRAIN, scale=3.0)
    (output.logits.logsumexp(1).sum()).backward()
    context = ImportanceContext(
        model=model, task_id=1, inputs=x, targets=targets, scale=3.0, output=output
    )
    units = model.backbone.masker.unit_counts
    skipped = {"lrp_abs", "stochastic_gates"}
    for name in IMPORTANCE_TYPES.names():
        if name in skipped:
            continue
        importance = IMPORTANCE_TYPES.get(name).compute(context)
        assert {key: value.shape[0] for key, value in importance.items()} == units, name
        assert all(torch.isfinite(value).all() for value in importance.values()), name


def test_activation_importance_reduces_over_batch_and_tokens_by_hand():
    model, x, targets = _model(torch.float32)
    output = model(x, task_id=1, stage=Stage.TRAIN, scale=3.0)
    context = ImportanceContext(
        model=model, task_id=1, inputs=x, targets=targets, scale=3.0, output=output
    )
    importance = IMPORTANCE_TYPES.get("activation_abs").compute(context)
    key = "blocks_0_fc1"
    hidden = output.backbone.activations[key]  # (batch, units, tokens)
    assert hidden.shape == (4, 32, 5)
    expected = torch.stack([hidden[:, u, :].abs().mean() for u in range(32)])
    torch.testing.assert_close(importance[key], expected)


def test_gradient_x_activation_reduces_over_batch_and_tokens_by_hand():
    """bam(h * d logit_target / d h) with h the tapped (batch, units, tokens) tensor."""
    model, x, targets = _model()
    model.train()
    key = "blocks_0_fc1"
    tapped = {}
    tap = model.backbone.activation_module(key)
    handle = tap.register_forward_hook(lambda module, args, out: tapped.setdefault("h", out))
    try:
        with attribution_guard(model):
            logits = model(x, task_id=1, stage=Stage.TRAIN, scale=3.0).logits
            hidden = tapped["h"]
            (grad,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), hidden)
    finally:
        handle.remove()
    expected = (hidden * grad).abs().mean(dim=(0, 2)).detach()
    output = model(x, task_id=1, stage=Stage.TRAIN, scale=3.0)
    context = ImportanceContext(
        model=model, task_id=1, inputs=x, targets=targets, scale=3.0, output=output
    )
    importance = IMPORTANCE_TYPES.get("gradient_x_activation_abs").compute(context)
    torch.testing.assert_close(importance[key], expected, rtol=1e-9, atol=1e-12)


def test_lrp_is_refused_on_the_vit_naming_the_module_without_a_rule():
    """Captum's LRP has no rule for the per-task class token, positional embedding or layer
    norms (docs/own_model.md says why no other rule is used); the refusal leaves no rule behind."""
    model, x, targets = _model(torch.float32)
    output = model(x, task_id=1, stage=Stage.TRAIN, scale=3.0)
    context = ImportanceContext(
        model=model, task_id=1, inputs=x, targets=targets, scale=3.0, output=output
    )
    with pytest.raises(
        TypeError, match=r"LRP has no rule for module type (ParameterModule|LayerNorm)"
    ):
        IMPORTANCE_TYPES.get("lrp_abs").compute(context)
    assert not any(hasattr(module, "rule") for module in model.modules())
