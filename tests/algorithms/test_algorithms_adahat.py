"""AdaHAT: rates of the three modes by hand, limits, statistics, validation."""

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from hatcl.algorithms.adahat import AdaHAT
from hatcl.algorithms.base import StepContext
from hatcl.algorithms.hat import HAT
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.masking.stage import Stage


def _model(hidden=(2, 2), inputs=2):
    torch.manual_seed(0)
    backbone = MLPBackbone(input_shape=(inputs,), hidden_dims=hidden, masked=True)
    model = ContinualModel(backbone=backbone, heads=TaskIncrementalHeads(input_dim=hidden[-1]))
    for task_id in (1, 2, 3):
        model.setup_task(task_id=task_id, num_classes=2)
    return model


def _store_summative(model):
    """Two stored tasks giving summative fc1 = [2, 1], fc2 = [0, 1]."""
    store = model.backbone.masker.store
    store.store(task_id=1, masks={"fc1": torch.tensor([1.0, 1]), "fc2": torch.tensor([0.0, 1])})
    store.store(task_id=2, masks={"fc1": torch.tensor([1.0, 0]), "fc2": torch.tensor([0.0, 0])})


def _step(algorithm, model, task_id):
    inputs = torch.randn(4, model.backbone.linears[0].in_features)
    targets = torch.tensor([0, 1, 0, 1])
    scale = algorithm.training_scale(batch_index=1, num_batches=3)
    output = model(inputs, task_id=task_id, stage=Stage.TRAIN, scale=scale)
    context = StepContext(
        model=model,
        task_id=task_id,
        batch_index=1,
        num_batches=3,
        scale=scale,
        inputs=inputs,
        targets=targets,
        output=output,
    )
    loss = F.cross_entropy(output.logits, targets)
    for term in algorithm.loss_terms(context).values():
        loss = loss + term
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.backbone.named_parameters() if p.grad is not None}
    algorithm.adjust_gradients(context)
    return context, grads


def _layer_rates(algorithm, model, task_id, sparsity):
    algorithm.on_task_start(task_id=task_id, model=model)
    return [
        algorithm.rule.rates(task_id=task_id, layer=layer, network_sparsity=torch.tensor(sparsity))
        for layer in algorithm.layers
    ]


def test_adahat_rates_by_hand():
    # alpha 0.2, epsilon 0.1, R 0.3 -> r = 0.5; I = 0 -> 1, I = 1 -> 1/3, I = 2 -> 1/5
    model = _model()
    _store_summative(model)
    algorithm = AdaHAT(adjustment_intensity=0.2, epsilon=0.1)
    (w1, b1), (w2, b2) = _layer_rates(algorithm, model, 3, 0.3)
    assert_close(w1, torch.tensor([[0.2, 0.2], [1 / 3, 1 / 3]]))
    assert_close(b1, torch.tensor([0.2, 1 / 3]))
    # fc2 weight (i, j) gets min(M_fc2_i, M_fc1_j) = [[0, 0], [1, 1]]
    assert_close(w2, torch.tensor([[1.0, 1.0], [1 / 3, 1 / 3]]))
    assert_close(b2, torch.tensor([1.0, 1 / 3]))


def test_adahat_no_reg_ignores_sparsity():
    # r = alpha / epsilon = 2: I = 1 -> 2/3, I = 2 -> 1/2
    model = _model()
    _store_summative(model)
    algorithm = AdaHAT(adjustment_intensity=0.2, epsilon=0.1, adjustment_mode="adahat_no_reg")
    (w1, b1), (w2, _) = _layer_rates(algorithm, model, 3, 0.3)
    assert_close(w1, torch.tensor([[0.5, 0.5], [2 / 3, 2 / 3]]))
    assert_close(w2, torch.tensor([[1.0, 1.0], [2 / 3, 2 / 3]]))


def test_adahat_no_sum_uses_the_task_id():
    # r = 0.5 and t = 3: every rate is 0.5 / 3.5
    model = _model()
    _store_summative(model)
    algorithm = AdaHAT(adjustment_intensity=0.2, epsilon=0.1, adjustment_mode="adahat_no_sum")
    for weight, bias in _layer_rates(algorithm, model, 3, 0.3):
        assert_close(weight.expand(2, 2), torch.full((2, 2), 1 / 7))
        assert_close(bias, torch.tensor(1 / 7))


@pytest.mark.parametrize("mode", ["adahat", "adahat_no_reg"])
def test_rates_are_exactly_one_on_task_one(mode):
    model = _model()
    algorithm = AdaHAT(adjustment_intensity=1e-6, adjustment_mode=mode)
    algorithm.on_task_start(task_id=1, model=model)
    _, before = _step(algorithm, model, 1)
    assert all(torch.equal(r, torch.ones_like(r)) for r in algorithm.last_rates())
    for name, parameter in model.backbone.named_parameters():
        if name.startswith("linears"):
            assert torch.equal(parameter.grad, before[name])
    assert algorithm.step_metrics()["capacity"] == 1.0


def test_alpha_to_zero_protects_like_hat():
    model = _model(hidden=(4, 3), inputs=3)
    store = model.backbone.masker.store
    store.store(
        task_id=1, masks={"fc1": torch.tensor([1.0, 0, 1, 0]), "fc2": torch.tensor([0.0, 1, 1])}
    )
    adahat, hat = AdaHAT(adjustment_intensity=1e-12), HAT()
    adahat.on_task_start(task_id=2, model=model)
    hat.on_task_start(task_id=2, model=model)
    sparsity = torch.tensor(0.2)
    for ada_layer, hat_layer in zip(adahat.layers, hat.layers):
        ada = adahat.rule.rates(task_id=2, layer=ada_layer, network_sparsity=sparsity)
        ref = hat.rule.rates(task_id=2, layer=hat_layer, network_sparsity=sparsity)
        assert_close(ada[0], ref[0], atol=1e-9, rtol=0)
        assert_close(ada[1], ref[1], atol=1e-9, rtol=0)


def test_step_metrics_per_layer_statistics():
    model = _model()
    _store_summative(model)
    algorithm = AdaHAT(adjustment_intensity=0.2, epsilon=0.1, adjustment_mode="adahat_no_reg")
    algorithm.on_task_start(task_id=3, model=model)
    _step(algorithm, model, 3)
    metrics = algorithm.step_metrics()
    # no_reg rates: fc1 weight [[.5,.5],[2/3,2/3]] bias [.5, 2/3]; fc2 weight [[1,1],[2/3,2/3]]
    # bias [1, 2/3]
    fc1 = [0.5, 0.5, 2 / 3, 2 / 3, 0.5, 2 / 3]
    fc2 = [1, 1, 2 / 3, 2 / 3, 1, 2 / 3]
    # keyed by mask key, the layer names of tasks.json and the figures
    assert metrics["rate_mean/fc1"] == pytest.approx(sum(fc1) / 6)
    assert metrics["rate_min/fc1"] == pytest.approx(0.5)
    assert metrics["rate_below_half/fc1"] == 0.0
    assert metrics["rate_min/fc2"] == pytest.approx(2 / 3)
    assert metrics["capacity"] == pytest.approx((sum(fc1) + sum(fc2)) / 12)
    assert algorithm.network_capacity() == pytest.approx(metrics["capacity"])


def test_gradients_are_scaled_by_the_rates():
    model = _model()
    _store_summative(model)
    algorithm = AdaHAT(adjustment_intensity=0.2, epsilon=0.1, adjustment_mode="adahat_no_reg")
    algorithm.on_task_start(task_id=3, model=model)
    _, before = _step(algorithm, model, 3)
    weight = model.backbone.linears[0].weight
    assert_close(weight.grad, before["linears.0.weight"] * torch.tensor([[0.5], [2 / 3]]))


@pytest.mark.parametrize(
    ("options", "error", "fragment"),
    [
        ({"adjustment_intensity": 0.0}, ValueError, "adjustment_intensity must be in"),
        ({"adjustment_intensity": -1.0}, ValueError, "adjustment_intensity"),
        ({"adjustment_intensity": "big"}, TypeError, "adjustment_intensity must be a number"),
        ({"epsilon": 0.0}, ValueError, "epsilon must be in"),
        ({"epsilon": None}, TypeError, "epsilon must be a number"),
        ({"adjustment_mode": "hat"}, ValueError, "adahat, adahat_no_sum, adahat_no_reg"),
        ({"s_max": 1.0}, ValueError, "s_max"),
        ({"clamp_threshold": 0}, ValueError, "clamp_threshold"),
        ({"mask_sparsity_reg_factor": -0.1}, ValueError, "mask_sparsity_reg_factor"),
        ({"mask_sparsity_reg_mode": "sum"}, ValueError, "original, cross"),
        ({"task_embedding_init_mode": "zeros"}, ValueError, "N01"),
        ({"embedding_clamp": -1}, ValueError, "embedding_clamp"),
    ],
)
def test_invalid_parameters(options, error, fragment):
    kwargs = {"adjustment_intensity": 1e-6, **options}
    with pytest.raises(error, match=fragment):
        AdaHAT(**kwargs)


def test_defaults_are_the_preset_and_keyword_only():
    """Omitted parameters take the adahat preset's values (docs/spec.md §4; the CLI's too)."""
    algorithm = AdaHAT()
    assert (algorithm.adjustment_intensity, algorithm.epsilon) == (1e-6, 0.1)
    assert algorithm.adjustment_mode == "adahat"
    with pytest.raises(TypeError):
        AdaHAT(1e-6)
