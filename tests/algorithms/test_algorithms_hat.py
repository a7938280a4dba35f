"""HAT: the invariant on earlier tasks, gradient adjustment, compensation, clamp, hook order."""

import pytest
import torch

from hatcl.algorithms.base import Algorithm, StepContext
from hatcl.algorithms.hat import HAT
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.cli_run import compose_config
from hatcl.data.base import build_continual_data
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.masking.stage import Stage
from hatcl.training.experiment import ExperimentConfig, build_algorithm, build_model, build_module
from hatcl.training.task_loop import train_task

TINY = [
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "data.num_tasks=2",
    "data.train_subset=300",
    "backbone.hidden_dims=[32,16]",
]


def _experiment(algorithm: str, extra=()):
    cfg = compose_config([f"algorithm={algorithm}", *TINY, *extra])
    config = ExperimentConfig.from_mapping(cfg)
    torch.manual_seed(0)
    data = build_continual_data(config.data, seed=config.seed)
    algo = build_algorithm(config.algorithm)
    model = build_model(config, data=data, algorithm=algo)
    return config, data, build_module(config, model=model, algorithm=algo)


def _task1_logits(module, data):
    module.model.eval()
    with torch.no_grad():
        return module.model(data.tasks[0].test.x, task_id=1, stage=Stage.TEST).logits.clone()


@pytest.mark.parametrize("batch_norm", ["none", "independent"])
def test_hat_keeps_task1_outputs_exactly_after_task2(batch_norm):
    config, data, module = _experiment("hat", [f"backbone.batch_norm={batch_norm}"])
    train_task(module, data.tasks[0], config=config)
    before = _task1_logits(module, data)
    train_task(module, data.tasks[1], config=config)
    assert torch.equal(_task1_logits(module, data), before)


def test_finetuning_changes_task1_outputs():
    config, data, module = _experiment("finetuning")
    train_task(module, data.tasks[0], config=config)
    before = _task1_logits(module, data)
    train_task(module, data.tasks[1], config=config)
    assert not torch.equal(_task1_logits(module, data), before)


def _masked_model(units=(4, 3)) -> ContinualModel:
    torch.manual_seed(1)
    backbone = MLPBackbone(input_shape=(5,), hidden_dims=units, masked=True)
    model = ContinualModel(backbone=backbone, heads=TaskIncrementalHeads(input_dim=units[-1]))
    model.setup_task(task_id=1, num_classes=2)
    model.setup_task(task_id=2, num_classes=2)
    return model


def _one_step(algorithm: HAT, model: ContinualModel, *, scale: float = 2.0) -> StepContext:
    inputs, targets = torch.randn(6, 5), torch.tensor([0, 1, 0, 1, 1, 0])
    output = model(inputs, task_id=2, stage=Stage.TRAIN, scale=scale)
    context = StepContext(
        model=model,
        task_id=2,
        batch_index=0,
        num_batches=1,
        scale=scale,
        inputs=inputs,
        targets=targets,
        output=output,
    )
    loss = torch.nn.functional.cross_entropy(output.logits, targets)
    loss = loss + sum(algorithm.loss_terms(context).values())
    loss.backward()
    return context


def _store_task1(model: ContinualModel) -> None:
    store = model.backbone.masker.store
    store.store(
        task_id=1, masks={"fc1": torch.tensor([1.0, 0, 1, 0]), "fc2": torch.tensor([0.0, 1, 0])}
    )


def test_hat_blocks_gradients_of_units_used_by_earlier_tasks():
    model = _masked_model()
    _store_task1(model)
    algorithm = HAT()
    algorithm.on_task_start(task_id=2, model=model)
    context = _one_step(algorithm, model)
    linears = model.backbone.linears
    raw = [(layer.weight.grad.clone(), layer.bias.grad.clone()) for layer in linears]
    algorithm.adjust_gradients(context)
    fc1 = torch.tensor([1.0, 0, 1, 0])
    fc2 = torch.tensor([0.0, 1, 0])
    # layer 1: rate = 1 - m1_i (first layer: its input is always on)
    expected_w1 = raw[0][0] * (1 - fc1)[:, None]
    # layer 2: rate = 1 - min(m2_i, m1_j)
    expected_w2 = raw[1][0] * (1 - torch.minimum(fc2[:, None], fc1[None, :]))
    torch.testing.assert_close(linears[0].weight.grad, expected_w1, rtol=0, atol=0)
    torch.testing.assert_close(linears[0].bias.grad, raw[0][1] * (1 - fc1), rtol=0, atol=0)
    torch.testing.assert_close(linears[1].weight.grad, expected_w2, rtol=0, atol=0)
    torch.testing.assert_close(linears[1].bias.grad, raw[1][1] * (1 - fc2), rtol=0, atol=0)
    # capacity: mean rate over all 4*5 + 4 + 3*4 + 3 entries
    rates = [1 - fc1[:, None].expand(4, 5), 1 - fc1, 1 - torch.minimum(fc2[:, None], fc1), 1 - fc2]
    expected_capacity = sum(float(r.sum()) for r in rates) / sum(r.numel() for r in rates)
    assert algorithm.network_capacity() == pytest.approx(expected_capacity)


@pytest.mark.parametrize(
    ("mode", "alpha", "protected_rate"),
    [("hat_const_alpha", 0.25, 0.25), ("hat_const_1", None, 1.0)],
)
def test_constant_adjustment_modes(mode, alpha, protected_rate):
    model = _masked_model()
    _store_task1(model)
    algorithm = HAT(adjustment_mode=mode, alpha=alpha)
    algorithm.on_task_start(task_id=2, model=model)
    context = _one_step(algorithm, model)
    linears = model.backbone.linears
    raw = [(layer.weight.grad.clone(), layer.bias.grad.clone()) for layer in linears]
    algorithm.adjust_gradients(context)
    # docs/spec.md §1: rate = c P + (1 - P), P the parameter-wise cumulative mask (min): layer 1's
    # weights and every bias take the unit's mask, fc2's weight (i, j) min(fc2_i, fc1_j)
    fc1, fc2 = torch.tensor([1.0, 0, 1, 0]), torch.tensor([0.0, 1, 0])
    protected = [
        (fc1[:, None].expand(4, 5), fc1),
        (torch.minimum(fc2[:, None], fc1[None, :]), fc2),
    ]
    for layer, (raw_w, raw_b), (p_w, p_b) in zip(linears, raw, protected):
        torch.testing.assert_close(layer.weight.grad, raw_w * (protected_rate * p_w + 1 - p_w))
        torch.testing.assert_close(layer.bias.grad, raw_b * (protected_rate * p_b + 1 - p_b))
    assert any(bool((r * p != 0).any()) for pair in zip(raw, protected) for r, p in zip(*pair))


def test_embedding_gradients_are_compensated_with_the_step_scale():
    model = _masked_model()
    algorithm = HAT(s_max=400.0, clamp_threshold=2.0)
    algorithm.on_task_start(task_id=2, model=model)
    embeddings = model.backbone.masker.embeddings
    with torch.no_grad():  # s e = 3 e: entries beyond |e| = 2/3 are clamped
        embeddings["fc1"].copy_(torch.tensor([0.9, -0.3, 0.1, -1.2]))
        embeddings["fc2"].copy_(torch.tensor([0.5, -0.8, 0.2]))
    context = _one_step(algorithm, model, scale=3.0)
    raw = {key: value.grad.clone() for key, value in embeddings.items()}
    algorithm.compensate_gradients(context)
    for key, embedding in embeddings.items():
        e = embedding.detach()
        # docs/spec.md §1: (s_max / s) (cosh(clamp(s e, -c, c)) + 1) / (cosh(e) + 1), s = 3, c = 2
        factor = (400.0 / 3.0) * (torch.cosh((3.0 * e).clamp(-2.0, 2.0)) + 1) / (torch.cosh(e) + 1)
        torch.testing.assert_close(embedding.grad, raw[key] * factor, msg=key)
    assert bool((raw["fc1"] != 0).all())
    # by hand for e = 0.9 (clamped: 3 e = 2.7 > 2) and e = 0.1 (not clamped)
    by_hand = torch.tensor([(3.7622 + 1) / (1.4331 + 1), (1.0453 + 1) / (1.0050 + 1)])
    ratio = embeddings["fc1"].grad[[0, 2]] / raw["fc1"][[0, 2]] / (400.0 / 3.0)
    torch.testing.assert_close(ratio, by_hand, rtol=1e-3, atol=0)


def test_embedding_clamp_after_the_step():
    model = _masked_model()
    algorithm = HAT(embedding_clamp=0.5)
    algorithm.on_task_start(task_id=2, model=model)
    with torch.no_grad():
        model.backbone.masker.embeddings["fc1"].copy_(torch.tensor([3.0, -2.0, 0.1, 0.0]))
    context = _one_step(algorithm, model)
    algorithm.after_optimizer_step(context)
    assert torch.equal(
        model.backbone.masker.embeddings["fc1"].detach(), torch.tensor([0.5, -0.5, 0.1, 0.0])
    )


def test_annealing_and_validation_scale():
    algorithm = HAT(s_max=400.0)
    assert algorithm.training_scale(batch_index=0, num_batches=5) == pytest.approx(1 / 400)
    assert algorithm.training_scale(batch_index=4, num_batches=5) == 400.0
    assert algorithm.training_scale(batch_index=0, num_batches=1) == 400.0
    assert algorithm.evaluation_scale() == 400.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"adjustment_mode": "hat_fast"}, "unknown adjustment_mode 'hat_fast'; valid choices"),
        ({"adjustment_mode": "hat_const_alpha"}, "requires alpha"),
        ({"alpha": 2.0, "adjustment_mode": "hat_const_alpha"}, r"alpha must be in \[0.0, 1.0\]"),
        ({"s_max": 0.5}, r"s_max must be in \(1.0, inf\)"),
        ({"mask_sparsity_reg_mode": "dense"}, "unknown mask_sparsity_reg_mode 'dense'"),
        ({"task_embedding_init_mode": "zeros"}, "unknown task_embedding_init_mode 'zeros'"),
        ({"mask_sparsity_reg_factor": -1}, "mask_sparsity_reg_factor must be in"),
        ({"clamp_threshold": "big"}, "clamp_threshold must be a number"),
    ],
)
def test_invalid_hat_parameters_are_named(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        HAT(**kwargs)


class _Recorder(HAT):
    """HAT that records the order in which the loop calls its hooks."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def on_task_start(self, **kwargs):
        self.calls.append("on_task_start")
        super().on_task_start(**kwargs)

    def training_scale(self, **kwargs):
        self.calls.append("training_scale")
        return super().training_scale(**kwargs)

    def loss_terms(self, context):
        self.calls.append("loss_terms")
        assert all(p.grad is None for p in context.model.parameters())  # zeroed before forward
        return super().loss_terms(context)

    def adjust_gradients(self, context):
        self.calls.append("adjust_gradients")
        assert context.model.backbone.linears[0].weight.grad is not None  # after backward
        super().adjust_gradients(context)

    def compensate_gradients(self, context):
        self.calls.append("compensate_gradients")
        super().compensate_gradients(context)

    def after_optimizer_step(self, context):
        self.calls.append("after_optimizer_step")
        super().after_optimizer_step(context)

    def on_task_end(self, **kwargs):
        self.calls.append("on_task_end")
        super().on_task_end(**kwargs)


def test_the_loop_calls_hooks_in_spec_order():
    config, data, module = _experiment("hat", ["data.train_subset=100", "trainer.batch_size=50"])
    recorder = _Recorder()
    module.algorithm = recorder
    train_task(module, data.tasks[0], config=config)
    step = [
        "training_scale",
        "loss_terms",
        "adjust_gradients",
        "compensate_gradients",
        "after_optimizer_step",
    ]
    steps = len(data.tasks[0].train.y) // 50 + (len(data.tasks[0].train.y) % 50 > 0)
    assert recorder.calls == ["on_task_start", *step * steps, "on_task_end"]
    assert isinstance(recorder, Algorithm)


def test_a_configured_scheduler_really_steps_and_each_task_gets_a_fresh_optimizer():
    config, data, module = _experiment(
        "hat",
        [
            "trainer.max_epochs=3",
            "optimizer.scheduler=step",
            "+optimizer.scheduler_options={step_size: 1, gamma: 0.5}",
        ],
    )
    first = train_task(module, data.tasks[0], config=config)
    assert first.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5**3)
    second = train_task(module, data.tasks[1], config=config)
    assert second.optimizers[0] is not first.optimizers[0]
    assert second.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5**3)
    heads = {id(p) for p in module.model.heads.head(2).parameters()}
    optimized = {id(p) for group in second.optimizers[0].param_groups for p in group["params"]}
    assert heads <= optimized
