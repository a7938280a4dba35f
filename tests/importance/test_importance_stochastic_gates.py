"""The ``stochastic_gates`` importance: gates on h_l during a task, gone afterwards.

Hand-computed values use ``math.erf`` (independent of the gates' own formula): the loss term is
``reg_weight * sum Phi(mu / std)`` over every unit, the raw importance is ``Phi(mu / std)``.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from hatcl.algorithms.base import StepContext
from hatcl.algorithms.fgadahat import FGAdaHAT
from hatcl.backbones.cnn import CNNBackbone
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.backbones.resnet import ResNetBackbone
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.importance.base import ImportanceContext
from hatcl.importance.registry import IMPORTANCE_TYPES
from hatcl.importance.stochastic_gates import LOSS_TERM, StochasticGatesPlugin
from hatcl.masking.stage import Stage

REG_WEIGHT = 0.03
STD = 0.4


def _algorithm(**options):
    values = {
        "adjustment_intensity": 1.5e-7,
        "importance_type": "stochastic_gates",
        "importance_summing_strategy": "add_all",
        "importance_scheduler_type": "linear_sparsity_reg",
        "neuron_to_weight_importance_aggregation_mode": "min",
        "mask_sparsity_reg_factor": 0.1,
        "stochastic_gates_reg_weight": REG_WEIGHT,
        "stochastic_gates_std": STD,
        **options,
    }
    return FGAdaHAT(**values)


def make_model(backbone):
    model = ContinualModel(
        backbone=backbone, heads=TaskIncrementalHeads(input_dim=backbone.output_dim)
    )
    model.setup_task(task_id=1, num_classes=2)
    return model


def _mlp():
    torch.manual_seed(0)
    return make_model(MLPBackbone(input_shape=(3,), hidden_dims=(4, 2), masked=True))


def _phi(value: float) -> float:
    return 0.5 * (1.0 + math.erf(value / math.sqrt(2.0)))


def _set_mu(plugin, values):
    with torch.no_grad():
        for key, mu in values.items():
            plugin.gates[key].mu.copy_(torch.tensor(mu))


def _step(model, algorithm, inputs, targets, *, task_id=1, scale=5.0):
    output = model(inputs, task_id=task_id, stage=Stage.TRAIN, scale=scale)
    return StepContext(
        model=model,
        task_id=task_id,
        batch_index=0,
        num_batches=1,
        scale=scale,
        inputs=inputs,
        targets=targets,
        output=output,
    )


def _no_forward_hooks(model):
    return all(
        not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks) for m in model.modules()
    )


def test_gates_live_for_one_task_and_leave_no_trace():
    model = _mlp()
    algorithm = _algorithm()
    model_keys = list(model.state_dict())
    algorithm.on_task_start(task_id=1, model=model)
    plain = _algorithm(importance_type="input_weight_gradient_abs_sum")
    plain.on_task_start(task_id=1, model=_mlp())
    algorithm_keys = list(plain.state_dict())  # the same algorithm without gates
    assert set(model.backbone.activation_transforms) == {"fc1", "fc2"}
    gates = algorithm.tracker.plugin.gates
    assert {key: g.n_gates for key, g in gates.items()} == {"fc1": 4, "fc2": 2}
    assert all(g.mask is None for g in gates.values())
    trainable = list(algorithm.trainable_parameters(model))
    assert any(p is gates["fc1"].mu for p in trainable)
    assert any(p is gates["fc2"].mu for p in trainable)
    assert len(trainable) == len(list(model.parameters())) + 2
    assert list(model.state_dict()) == model_keys  # not submodules, even during the task
    assert list(algorithm.state_dict()) == algorithm_keys

    inputs, targets = torch.randn(6, 3), torch.arange(6) % 2
    context = _step(model, algorithm, inputs, targets)
    assert LOSS_TERM in algorithm.loss_terms(context)
    algorithm.after_optimizer_step(context)
    algorithm.on_task_end(task_id=1, model=model, task_data=None)

    assert model.backbone.activation_transforms == {}
    assert algorithm.tracker.plugin.gates == {}
    assert list(model.state_dict()) == model_keys
    assert list(algorithm.state_dict()) == algorithm_keys
    assert _no_forward_hooks(model)
    assert len(list(algorithm.trainable_parameters(model))) == len(list(model.parameters()))
    # the next task gets fresh gates
    algorithm.on_task_start(task_id=2, model=model)
    assert algorithm.tracker.plugin.gates["fc1"] is not gates["fc1"]


def test_gates_multiply_h_l_in_training_only():
    model = _mlp()
    inputs = torch.randn(5, 3)
    algorithm = _algorithm()
    algorithm.on_task_start(task_id=1, model=model)
    plugin = algorithm.tracker.plugin
    installed = dict(model.backbone.activation_transforms)
    model.backbone.activation_transforms.clear()
    plain = {
        s: model(inputs, task_id=1, stage=s, scale=4.0) for s in (Stage.TRAIN, Stage.VALIDATION)
    }
    model.backbone.activation_transforms.update(installed)
    _set_mu(plugin, {"fc1": [0.2, 0.7, 1.5, -0.3], "fc2": [0.5, 0.9]})
    for gates in plugin.gates.values():
        gates.eval()  # deterministic: z = clamp(mu, 0, 1)
    gated = model(inputs, task_id=1, stage=Stage.TRAIN, scale=4.0)
    factor = torch.tensor([0.2, 0.7, 1.0, 0.0])
    expected = plain[Stage.TRAIN].backbone.activations["fc1"] * factor
    torch.testing.assert_close(gated.backbone.activations["fc1"], expected)
    assert not torch.equal(gated.logits, plain[Stage.TRAIN].logits)
    validation = model(inputs, task_id=1, stage=Stage.VALIDATION, scale=4.0)
    torch.testing.assert_close(validation.logits, plain[Stage.VALIDATION].logits, rtol=0, atol=0)
    model.backbone.masker.store_current(task_id=1)
    with_gates = model(inputs, task_id=1, stage=Stage.TEST).logits
    algorithm.tracker.plugin.on_task_end(task_id=1, model=model)
    without = model(inputs, task_id=1, stage=Stage.TEST).logits
    torch.testing.assert_close(with_gates, without, rtol=0, atol=0)


def test_loss_term_is_reg_weight_times_summed_active_probs():
    model = _mlp()
    algorithm = _algorithm()
    algorithm.on_task_start(task_id=1, model=model)
    mu = {"fc1": [0.1, 0.5, -0.2, 0.8], "fc2": [0.3, 0.0]}
    _set_mu(algorithm.tracker.plugin, mu)
    context = _step(model, algorithm, torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))
    terms = algorithm.loss_terms(context)
    expected = REG_WEIGHT * sum(_phi(m / STD) for values in mu.values() for m in values)
    assert set(terms) == {"mask_sparsity", LOSS_TERM}
    assert terms[LOSS_TERM].item() == pytest.approx(expected, rel=1e-6)
    terms[LOSS_TERM].backward()
    grad = algorithm.tracker.plugin.gates["fc1"].mu.grad
    density = [math.exp(-((m / STD) ** 2) / 2) / math.sqrt(2 * math.pi) for m in mu["fc1"]]
    torch.testing.assert_close(grad, torch.tensor([REG_WEIGHT * d / STD for d in density]))


def test_importance_is_the_active_probs_and_feeds_the_task_importance():
    model = _mlp()
    algorithm = _algorithm(base_importance=0.0)
    algorithm.on_task_start(task_id=1, model=model)
    mu = {"fc1": [0.1, 0.5, -0.2, 0.8], "fc2": [0.3, 0.0]}
    _set_mu(algorithm.tracker.plugin, mu)
    context = _step(model, algorithm, torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))
    raw = IMPORTANCE_TYPES.get("stochastic_gates").compute(
        ImportanceContext(
            model=model,
            task_id=1,
            inputs=context.inputs,
            targets=context.targets,
            scale=context.scale,
            output=context.output,
            plugin=algorithm.tracker.plugin,
        )
    )
    for key, values in mu.items():
        expected = torch.tensor([_phi(m / STD) for m in values])
        torch.testing.assert_close(raw[key], expected)
        assert not raw[key].requires_grad
    algorithm.after_optimizer_step(context)
    algorithm.on_task_end(task_id=1, model=model, task_data=None)
    task = algorithm.tracker.store.task_importance(1)
    for key, values in mu.items():
        probs = torch.tensor([_phi(m / STD) for m in values])
        normalised = (probs - probs.min()) / (probs.max() - probs.min() + 1e-8)
        expected = normalised * context.output.backbone.masks[key].detach()
        torch.testing.assert_close(task[key], expected)


def test_task_optimizer_moves_the_gates():
    model = _mlp()
    algorithm = _algorithm(stochastic_gates_reg_weight=1.0)
    algorithm.on_task_start(task_id=1, model=model)
    before = algorithm.tracker.plugin.gates["fc2"].mu.detach().clone()
    optimizer = torch.optim.SGD(algorithm.trainable_parameters(model), lr=0.1)
    context = _step(model, algorithm, torch.randn(8, 3), torch.arange(8) % 2)
    loss = F.cross_entropy(context.output.logits, context.targets)
    loss = loss + sum(algorithm.loss_terms(context).values())
    loss.backward()
    optimizer.step()
    assert not torch.equal(algorithm.tracker.plugin.gates["fc2"].mu, before)


def test_conv_activations_get_one_gate_per_channel():
    torch.manual_seed(0)
    backbone = CNNBackbone(
        input_shape=(1, 4, 4),
        channels=(3, 2),
        kernel_sizes=(2, 2),
        fc_dims=(2,),
        conv_dropout=0.0,
        fc_dropout=0.0,
    )
    model = make_model(backbone)
    plugin = StochasticGatesPlugin(stochastic_gates_reg_weight=0.5, stochastic_gates_std=STD)
    inputs = torch.randn(2, 1, 4, 4)
    plain = model.backbone(inputs, task_id=1, stage=Stage.TRAIN, scale=4.0)
    plugin.on_task_start(task_id=1, model=model)
    shapes = {k: None if g.mask is None else tuple(g.mask.shape) for k, g in plugin.gates.items()}
    assert shapes == {"conv1": (3, 1, 1), "conv2": (2, 1, 1), "fc1": None}
    with torch.no_grad():
        plugin.gates["conv1"].mu.copy_(torch.tensor([0.25, 1.2, 0.6]))
    for gates in plugin.gates.values():
        gates.eval()
    gated = model.backbone(inputs, task_id=1, stage=Stage.TRAIN, scale=4.0)
    factor = torch.tensor([0.25, 1.0, 0.6]).reshape(1, 3, 1, 1)
    torch.testing.assert_close(gated.activations["conv1"], plain.activations["conv1"] * factor)
    reg = plugin.loss_terms(None)[LOSS_TERM]
    expected = sum(_phi(m / STD) for m in [0.25, 1.2, 0.6])
    expected += sum(
        _phi(float(m) / STD) for k in ("conv2", "fc1") for m in plugin.gates[k].mu.detach()
    )
    assert reg.item() == pytest.approx(0.5 * expected, rel=1e-6)
    plugin.on_task_end(task_id=1, model=model)
    assert model.backbone.activation_transforms == {}


def test_resnet_blocks_pass_every_key_through_the_gates():
    torch.manual_seed(0)
    backbone = ResNetBackbone(input_shape=(1, 6, 6), width=2, num_blocks=(1, 1), small_input=True)
    plugin = StochasticGatesPlugin()
    model = make_model(backbone)
    plugin.on_task_start(task_id=1, model=model)
    assert set(plugin.gates) == set(backbone.unit_counts())
    backbone(torch.randn(2, 1, 6, 6), task_id=1, stage=Stage.TRAIN, scale=2.0)
    assert plugin.loss_terms(None)[LOSS_TERM].item() > 0  # every key was gated
    with pytest.raises(TypeError, match="did not pass"):  # consumed: one term per forward
        plugin.loss_terms(None)


def test_backbone_ignoring_the_transforms_is_reported(conv_model):
    model = conv_model
    plugin = StochasticGatesPlugin()
    plugin.on_task_start(task_id=1, model=model)
    model(torch.randn(2, 1, 3, 3), task_id=1, stage=Stage.TRAIN, scale=2.0)
    with pytest.raises(TypeError, match="TinyConvBackbone.*Backbone.activation"):
        plugin.loss_terms(None)


def test_compute_without_its_plugin_is_an_error(mlp_model):
    output = mlp_model(torch.randn(2, 3), task_id=1, stage=Stage.TRAIN, scale=2.0)
    context = ImportanceContext(
        model=mlp_model,
        task_id=1,
        inputs=torch.randn(2, 3),
        targets=torch.tensor([0, 1]),
        scale=2.0,
        output=output,
    )
    with pytest.raises(ValueError, match="stochastic_gates"):
        IMPORTANCE_TYPES.get("stochastic_gates").compute(context)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"stochastic_gates_reg_weight": -0.1}, ValueError, "stochastic_gates_reg_weight"),
        ({"stochastic_gates_reg_weight": math.inf}, ValueError, "stochastic_gates_reg_weight"),
        ({"stochastic_gates_reg_weight": "a"}, TypeError, "stochastic_gates_reg_weight"),
        ({"stochastic_gates_std": 0.0}, ValueError, "stochastic_gates_std"),
        ({"stochastic_gates_std": True}, TypeError, "stochastic_gates_std"),
    ],
)
def test_invalid_gate_options(options, error, match):
    with pytest.raises(error, match=match):
        _algorithm(**options)
    with pytest.raises(error, match=match):
        StochasticGatesPlugin(**options)


def test_other_importance_types_have_no_plugin():
    algorithm = _algorithm(importance_type="input_weight_gradient_abs_sum")
    model = _mlp()
    algorithm.on_task_start(task_id=1, model=model)
    assert algorithm.tracker.plugin is None
    assert model.backbone.activation_transforms == {}
    assert len(list(algorithm.trainable_parameters(model))) == len(list(model.parameters()))
