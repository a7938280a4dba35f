"""The HAT-family step over all layers at once equals the per-layer formulas of the spec.

The rules' ``step_rates`` (flat buffers, one R_l vector) against their per-layer ``rates``
with R_l from :func:`hatcl.functional.sparsity.original_sparsity`/``cross_sparsity``, the
gradients as multiplied, and R_l computed once per step (the step's cache).
"""

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from hatcl.algorithms.adahat import AdaHAT
from hatcl.algorithms.base import StepContext
from hatcl.algorithms.fgadahat import FGAdaHAT
from hatcl.algorithms.hat import HAT
from hatcl.algorithms.hat_mechanism import NetworkSparsity
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.functional.sparsity import cross_sparsity, original_sparsity
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.masking.stage import Stage

ALGORITHMS = [
    ("hat", lambda: HAT()),
    ("hat_const_alpha", lambda: HAT(adjustment_mode="hat_const_alpha", alpha=0.3)),
    ("adahat", lambda: AdaHAT(adjustment_intensity=0.05)),
    ("adahat_no_sum", lambda: AdaHAT(adjustment_mode="adahat_no_sum")),
    ("adahat_cross", lambda: AdaHAT(mask_sparsity_reg_mode="cross")),
    ("fgadahat", lambda: FGAdaHAT(adjustment_intensity=0.5)),
    ("fgadahat_summative", lambda: FGAdaHAT(
        importance_scheduler_type="summative_mask_sparsity_reg", importance_type="activation_abs")),
]  # fmt: skip


def _model():
    torch.manual_seed(0)
    backbone = MLPBackbone(input_shape=(6,), hidden_dims=(12, 14), masked=True)
    model = ContinualModel(backbone=backbone, heads=TaskIncrementalHeads(input_dim=14))
    for task_id in (1, 2):
        model.setup_task(task_id=task_id, num_classes=3)
    return model


def _context(algorithm, model, task_id, seed):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(8, 6, generator=generator)
    targets = torch.randint(0, 3, (8,), generator=generator)
    scale = algorithm.training_scale(batch_index=1, num_batches=4)
    output = model(inputs, task_id=task_id, stage=Stage.TRAIN, scale=scale)
    return StepContext(
        model=model, task_id=task_id, batch_index=1, num_batches=4, scale=scale,
        inputs=inputs, targets=targets, output=output,
    )  # fmt: skip


def _trained_to_task_two(algorithm):
    model = _model()
    algorithm.on_task_start(task_id=1, model=model)
    optimizer = torch.optim.SGD(algorithm.trainable_parameters(model), lr=0.5)
    for seed in range(3):
        optimizer.zero_grad()
        context = _context(algorithm, model, 1, seed)
        loss = F.cross_entropy(context.output.logits, context.targets)
        sum(algorithm.loss_terms(context).values(), loss).backward()
        algorithm.adjust_gradients(context)
        optimizer.step()
        algorithm.after_optimizer_step(context)
    algorithm.on_task_end(task_id=1, model=model, task_data=None)
    algorithm.on_task_start(task_id=2, model=model)
    return model


@pytest.mark.parametrize(("name", "build"), ALGORITHMS)
def test_step_equals_the_per_layer_formulas(name, build):
    algorithm = build()
    model = _trained_to_task_two(algorithm)
    context = _context(algorithm, model, 2, seed=7)
    terms = algorithm.loss_terms(context)
    loss = F.cross_entropy(context.output.logits, context.targets) + sum(terms.values())
    loss.backward()
    # the spec's regulariser, layer by layer
    masks = context.output.backbone.masks
    cumulative = model.backbone.masker.store.cumulative()
    keys = list(cumulative)
    spec = {"original": original_sparsity, "cross": cross_sparsity}[
        algorithm.mask_sparsity_reg_mode
    ]([masks[k] for k in keys], [cumulative[k] for k in keys])
    assert_close(terms["mask_sparsity"], algorithm.mask_sparsity_reg_factor * spec.reg)
    sparsity = dict(zip(keys, spec.per_layer))
    expected = []
    for layer in algorithm.layers:
        weight, bias = algorithm.rule.rates(
            task_id=2, layer=layer, network_sparsity=sparsity[layer.layer.mask_key]
        )
        expected.append((layer.weight, layer.weight.grad.clone() * weight))
        if layer.bias is not None:
            expected.append((layer.bias, layer.bias.grad.clone() * bias))
    algorithm.adjust_gradients(context)
    for parameter, grad in expected:
        assert_close(parameter.grad, grad, rtol=1e-5, atol=1e-12)
    rates = algorithm.last_rates()
    assert [r.shape for r in rates] == [p.shape for p, _ in expected]


@pytest.mark.parametrize(("name", "build"), ALGORITHMS[2:])
def test_network_sparsity_is_computed_once_per_step(name, build):
    algorithm = build()
    model = _trained_to_task_two(algorithm)
    context = _context(algorithm, model, 2, seed=3)
    algorithm.loss_terms(context)
    cached = context.cache["network_sparsity"]
    assert isinstance(cached, NetworkSparsity) and cached.keys == ("fc1", "fc2")
    # the adjustment reads the step's cache: a planted R_l = 0.3 gives the rates of R_l = 0.3
    planted = NetworkSparsity(values=torch.tensor([0.3, 0.3]), keys=cached.keys)
    context.cache["network_sparsity"] = planted
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    algorithm.adjust_gradients(context)
    layer = algorithm.layers[0]
    weight, _ = algorithm.rule.rates(task_id=2, layer=layer, network_sparsity=torch.tensor(0.3))
    assert_close(layer.weight.grad, weight.expand_as(layer.weight))


def test_a_loop_without_loss_terms_still_gets_the_step_r_l():
    algorithm = FGAdaHAT(adjustment_intensity=0.5)
    model = _trained_to_task_two(algorithm)
    context = _context(algorithm, model, 2, seed=5)
    F.cross_entropy(context.output.logits, context.targets).backward()
    algorithm.adjust_gradients(context)  # no loss_terms call this step
    masks = context.output.backbone.masks
    cumulative = model.backbone.masker.store.cumulative()
    spec = original_sparsity([masks[k] for k in cumulative], list(cumulative.values()))
    assert_close(context.cache["network_sparsity"].values, torch.stack(spec.per_layer))
