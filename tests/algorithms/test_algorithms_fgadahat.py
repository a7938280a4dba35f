"""FG-AdaHAT: summing tables, schedulers, rates, step observation, end of task, validation."""

import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from hatcl.algorithms.base import StepContext
from hatcl.algorithms.fgadahat import FGAdaHAT
from hatcl.algorithms.registries import IMPORTANCE_SCHEDULERS, SUMMING_STRATEGIES
from hatcl.backbones.base import BackboneOutput
from hatcl.backbones.mlp import MLPBackbone
from hatcl.backbones.model import ContinualModel, ModelOutput
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.masking.stage import Stage

BASE = {
    "adjustment_intensity": 0.5,
    "importance_type": "activation_abs",
    "importance_summing_strategy": "add_latest",
    "importance_scheduler_type": "sparsity_reg",
    "neuron_to_weight_importance_aggregation_mode": "min",
    "mask_sparsity_reg_factor": 0.1,
    "base_importance": 0.0,
}
STRATEGY_OPTIONS = {
    "linear_decrease": {"importance_summing_strategy_linear_step": 0.5},
    "exponential_decrease": {"importance_summing_strategy_exponential_rate": 2.0},
    "log_decrease": {"importance_summing_strategy_log_base": 2.0},
}


def _algorithm(**options):
    return FGAdaHAT(**{**BASE, **options})


def _model(hidden=(2, 2), inputs=2, tasks=4):
    torch.manual_seed(0)
    backbone = MLPBackbone(input_shape=(inputs,), hidden_dims=hidden, masked=True)
    model = ContinualModel(backbone=backbone, heads=TaskIncrementalHeads(input_dim=hidden[-1]))
    for task_id in range(1, tasks + 1):
        model.setup_task(task_id=task_id, num_classes=2)
    return model


# -- summing strategies: cumulative weight of task tau in I^{<t+1}, t = 1..4 (docs/spec.md §7) --
ADD_AVERAGE = [
    [1.0],
    [1.5, 0.5],
    [1.5 + 1 / 3, 0.5 + 1 / 3, 1 / 3],
    [1.5 + 1 / 3 + 0.25, 0.5 + 1 / 3 + 0.25, 1 / 3 + 0.25, 0.25],
]
L3 = math.log(3, 2)
WEIGHT_TABLES = {
    "add_latest": [[1], [1, 1], [1, 1, 1], [1, 1, 1, 1]],
    "add_all": [[1], [2, 1], [3, 2, 1], [4, 3, 2, 1]],
    "add_average": ADD_AVERAGE,
    "linear_decrease": [[1], [1.5, 1], [2, 1.5, 1], [2.5, 2, 1.5, 1]],
    "quadratic_decrease": [[1], [4, 1], [9, 4, 1], [16, 9, 4, 1]],
    "cubic_decrease": [[1], [8, 1], [27, 8, 1], [64, 27, 8, 1]],
    "exponential_decrease": [[2], [4, 2], [8, 4, 2], [16, 8, 4, 2]],
    "log_decrease": [[1], [2, 1], [L3 + 1, 2, 1], [3, L3 + 1, 2, 1]],
    "factorial_decrease": [[1], [2, 1], [6, 2, 1], [24, 6, 2, 1]],
}


def test_weight_tables_cover_every_strategy():
    assert set(WEIGHT_TABLES) == set(SUMMING_STRATEGIES.names())


@pytest.mark.parametrize("strategy", sorted(WEIGHT_TABLES))
def test_summing_weight_table_through_the_algorithm(strategy):
    """Task tau's importance is the one-hot e_tau, so unit tau of I reads task tau's weight."""
    model = _model(hidden=(4, 4))
    algorithm = _algorithm(
        importance_summing_strategy=strategy, **STRATEGY_OPTIONS.get(strategy, {})
    )
    for t in range(1, 5):
        algorithm.on_task_start(task_id=t, model=model)
        one_hot = torch.eye(4)[t - 1]
        algorithm.tracker.store.observe({"fc1": one_hot, "fc2": 2 * one_hot})
        algorithm.on_task_end(task_id=t, model=model, task_data=None)
        expected = torch.tensor(WEIGHT_TABLES[strategy][t - 1] + [0] * (4 - t), dtype=torch.float)
        assert_close(algorithm.tracker.store.summative()["fc1"], expected)
        assert_close(algorithm.tracker.store.summative()["fc2"], 2 * expected)


# -- schedulers and rates ------------------------------------------------------------------------


def _prepared(model, **options):
    """Summative importance fc1 = [2, 0.5], fc2 = [1, 4]; summative mask fc1 = [2, 1], fc2 = [0, 1];
    cumulative mask fc1 = [1, 1], fc2 = [0, 1]; prepared for task 3."""
    store = model.backbone.masker.store
    store.store(task_id=1, masks={"fc1": torch.tensor([1.0, 1]), "fc2": torch.tensor([0.0, 1])})
    store.store(task_id=2, masks={"fc1": torch.tensor([1.0, 0]), "fc2": torch.tensor([0.0, 0])})
    algorithm = _algorithm(**options)
    algorithm.tracker.store.ensure_keys({"fc1": 2, "fc2": 2}, like=torch.zeros(()))
    algorithm.tracker.store.set_summative(
        {"fc1": torch.tensor([2.0, 0.5]), "fc2": torch.tensor([1.0, 4])}
    )
    algorithm.on_task_start(task_id=3, model=model)
    return algorithm


def _rates(algorithm, sparsity):
    return [
        algorithm.rule.rates(task_id=3, layer=layer, network_sparsity=torch.tensor(sparsity))
        for layer in algorithm.layers
    ]


def test_sparsity_reg_rates_by_hand():
    # c = R + b_R = 0.3 + 0.2 = 0.5, alpha 0.5: rate = 0.5 / (0.5 I + 0.5) = 1 / (I + 1)
    algorithm = _prepared(_model(), base_mask_sparsity_reg=0.2)
    (w1, b1), (w2, b2) = _rates(algorithm, 0.3)
    assert_close(w1, torch.tensor([[1 / 3, 1 / 3], [1 / 1.5, 1 / 1.5]]))
    assert_close(b1, torch.tensor([1 / 3, 1 / 1.5]))
    # fc2 (i, j): min(I_fc2_i, I_fc1_j) = [[1, 0.5], [2, 0.5]]
    assert_close(w2, torch.tensor([[1 / 2, 1 / 1.5], [1 / 3, 1 / 1.5]]))
    assert_close(b2, torch.tensor([1 / 2, 1 / 5]))


def test_linear_sparsity_reg_rates_by_hand():
    # c = (t + b_L)(R + b_R) = (3 + 1)(0.3 + 0.2) = 2: rate = 0.5 / (2 I + 0.5)
    algorithm = _prepared(
        _model(),
        importance_scheduler_type="linear_sparsity_reg",
        base_linear=1.0,
        base_mask_sparsity_reg=0.2,
    )
    (w1, b1), (_, b2) = _rates(algorithm, 0.3)
    assert_close(b1, torch.tensor([0.5 / 4.5, 0.5 / 1.5]))
    assert_close(b2, torch.tensor([0.5 / 2.5, 0.5 / 8.5]))
    assert_close(w1[:, 0], b1)


def test_summative_mask_sparsity_reg_rates_by_hand():
    # c_ij = (min(Msum_i, Msum_j) + b_L)(R + b_R), b_L = 1, (R + b_R) = 0.5
    # fc1 (first layer): Msum = [2, 1] -> c = [1.5, 1]; I = [2, .5] -> rates .5/3.5, .5/1
    # fc2: Msum fc2 = [0, 1], fc1 = [2, 1]: min = [[0, 0], [1, 1]] -> c = [[.5, .5], [1, 1]]
    #      I = [[1, .5], [2, .5]] -> rates .5/(.5 I c... ) computed below
    algorithm = _prepared(
        _model(),
        importance_scheduler_type="summative_mask_sparsity_reg",
        base_linear=1.0,
        base_mask_sparsity_reg=0.2,
    )
    (w1, b1), (w2, b2) = _rates(algorithm, 0.3)
    assert_close(b1, torch.tensor([0.5 / 3.5, 0.5 / 1.0]))
    assert_close(w1, torch.tensor([[0.5 / 3.5] * 2, [0.5 / 1.0] * 2]))
    assert_close(w2, torch.tensor([[0.5 / 1.0, 0.5 / 0.75], [0.5 / 2.5, 0.5 / 1.0]]))
    # biases of fc2: Msum = [0, 1] -> c = [.5, 1]; I = [1, 4]
    assert_close(b2, torch.tensor([0.5 / 1.0, 0.5 / 4.5]))


@pytest.mark.parametrize("scheduler", IMPORTANCE_SCHEDULERS.names())
def test_scheduler_matches_the_functional_formula(scheduler):
    """rate == alpha / (c I + alpha) with c written out from docs/spec.md §5, every scheduler."""
    model = _model(hidden=(3, 2), inputs=2)
    store = model.backbone.masker.store
    store.store(task_id=1, masks={"fc1": torch.tensor([1.0, 0, 1]), "fc2": torch.tensor([1.0, 1])})
    store.store(task_id=2, masks={"fc1": torch.tensor([1.0, 1, 0]), "fc2": torch.tensor([0.0, 1])})
    algorithm = _algorithm(
        importance_scheduler_type=scheduler, base_linear=2.0, base_mask_sparsity_reg=0.3
    )
    algorithm.tracker.store.ensure_keys({"fc1": 3, "fc2": 2}, like=torch.zeros(()))
    importance = {"fc1": torch.tensor([0.3, 1.2, 0.0]), "fc2": torch.tensor([2.0, 0.7])}
    algorithm.tracker.store.set_summative(importance)
    algorithm.on_task_start(task_id=3, model=model)
    summative = store.summative()
    layer = algorithm.layers[1]
    weight_rate, _ = algorithm.rule.rates(
        task_id=3, layer=layer, network_sparsity=torch.tensor(0.4)
    )
    param_importance = torch.minimum(importance["fc2"][:, None], importance["fc1"][None, :])
    # docs/spec.md §5 written out: c = task factor x (R_l + b_R), rate = alpha / (c I + alpha)
    min_summative = torch.minimum(summative["fc2"][:, None], summative["fc1"][None, :])
    factor = {
        "linear_sparsity_reg": (3 + 2.0) * (0.4 + 0.3),
        "sparsity_reg": 0.4 + 0.3,
        "summative_mask_sparsity_reg": (min_summative + 2.0) * (0.4 + 0.3),
    }[scheduler]
    expected = 0.5 / (factor * param_importance + 0.5)
    assert_close(weight_rate, expected)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("min", [[1.0, 0.5], [2.0, 0.5]]),
        ("max", [[2.0, 1.0], [4.0, 4.0]]),
        ("mean", [[1.5, 0.75], [3.0, 2.25]]),
    ],
)
def test_aggregation_modes(mode, expected):
    # c = 0.5 and alpha = 0.5: rate = 1 / (I + 1) with I the aggregated importance of fc2
    algorithm = _prepared(
        _model(), neuron_to_weight_importance_aggregation_mode=mode, base_mask_sparsity_reg=0.2
    )
    (_, _), (w2, _) = _rates(algorithm, 0.3)
    assert_close(w2, 1 / (torch.tensor(expected) + 1))


def test_filter_by_cumulative_mask():
    # cumulative fc2 = [0, 1], fc1 = [1, 1]: fc2 row 0 and bias 0 lose their importance
    algorithm = _prepared(_model(), filter_by_cumulative_mask=True, base_mask_sparsity_reg=0.2)
    (w1, _), (w2, b2) = _rates(algorithm, 0.3)
    assert_close(w2, torch.tensor([[1.0, 1.0], [1 / 3, 1 / 1.5]]))
    assert_close(b2, torch.tensor([1.0, 1 / 5]))
    assert_close(w1, torch.tensor([[1 / 3, 1 / 3], [1 / 1.5, 1 / 1.5]]))


# -- the step: observation, normalisation, mask; the limits ---------------------------------------


def _fake_step(model, *, task_id, activations, masks):
    batch = next(iter(activations.values())).shape[0]
    output = ModelOutput(
        logits=torch.zeros(batch, 2),
        backbone=BackboneOutput(
            features=torch.zeros(batch, 2), masks=masks, activations=activations
        ),
    )
    return StepContext(
        model=model,
        task_id=task_id,
        batch_index=0,
        num_batches=1,
        scale=400.0,
        inputs=torch.zeros(batch, 2),
        targets=torch.zeros(batch, dtype=torch.long),
        output=output,
    )


@pytest.mark.parametrize("multiply", [True, False])
def test_step_observation_normalises_and_multiplies_the_training_mask(multiply):
    model = _model(hidden=(3, 2))
    algorithm = _algorithm(step_multiply_training_mask=multiply, base_importance=0.25)
    algorithm.on_task_start(task_id=1, model=model)
    masks = {"fc1": torch.tensor([1.0, 0.5, 0.0]), "fc2": torch.tensor([0.2, 1.0])}
    # bam: fc1 [1, 3, 2] -> normalised [0, 1, .5]; fc2 [4, 2] -> [1, 0]
    first = {"fc1": torch.tensor([[1.0, 3, 2]]), "fc2": torch.tensor([[4.0, 2]])}
    # bam: fc1 [2, 2, 4] -> [0, 0, 1]; fc2 [1, 3] -> [0, 1]
    second = {"fc1": torch.tensor([[2.0, 2, 4]]), "fc2": torch.tensor([[1.0, 3]])}
    for activations in (first, second):
        algorithm.after_optimizer_step(
            _fake_step(model, task_id=1, activations=activations, masks=masks)
        )
    fc1 = torch.tensor([0.0, 1, 1.5])
    fc2 = torch.tensor([1.0, 1])
    if multiply:
        fc1, fc2 = fc1 * masks["fc1"], fc2 * masks["fc2"]
    store = algorithm.tracker.store
    assert float(store.steps) == 2
    assert_close(store.accumulator_fc1, fc1, atol=1e-6, rtol=1e-6)
    assert_close(store.accumulator_fc2, fc2, atol=1e-6, rtol=1e-6)
    algorithm.on_task_end(task_id=1, model=model, task_data=None)
    assert_close(store.task_importance(1)["fc1"], fc1 / 2 + 0.25, atol=1e-6, rtol=1e-6)


def test_filter_unmasked_importance_uses_the_stored_binary_mask():
    model = _model(hidden=(3, 2))
    algorithm = _algorithm(filter_unmasked_importance=True, base_importance=1.0)
    algorithm.on_task_start(task_id=1, model=model)
    with torch.no_grad():
        model.backbone.masker.embeddings["fc1"].copy_(torch.tensor([1.0, -1.0, 2.0]))
        model.backbone.masker.embeddings["fc2"].copy_(torch.tensor([-3.0, 0.5]))
    algorithm.on_task_end(task_id=1, model=model, task_data=None)
    task = algorithm.tracker.store.task_importance(1)
    assert_close(task["fc1"], torch.tensor([1.0, 0.0, 1.0]))
    assert_close(task["fc2"], torch.tensor([0.0, 1.0]))


def _train_step(algorithm, model, task_id, optimizer):
    inputs = torch.randn(8, 2)
    targets = torch.arange(8) % 2
    scale = algorithm.training_scale(batch_index=0, num_batches=2)
    optimizer.zero_grad()
    output = model(inputs, task_id=task_id, stage=Stage.TRAIN, scale=scale)
    context = StepContext(
        model=model,
        task_id=task_id,
        batch_index=0,
        num_batches=2,
        scale=scale,
        inputs=inputs,
        targets=targets,
        output=output,
    )
    loss = F.cross_entropy(output.logits, targets) + sum(algorithm.loss_terms(context).values())
    loss.backward()
    algorithm.adjust_gradients(context)
    applied = model.backbone.linears[0].weight.grad.clone()
    algorithm.compensate_gradients(context)
    optimizer.step()
    algorithm.after_optimizer_step(context)
    return applied, context.output.backbone.masks


def test_rates_are_exactly_one_on_task_one_and_importance_reads_applied_gradients():
    model = _model(hidden=(3, 2), tasks=2)
    algorithm = _algorithm(importance_type="input_weight_gradient_abs_sum", base_importance=0.5)
    algorithm.on_task_start(task_id=1, model=model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    _train_step(algorithm, model, 1, optimizer)
    assert all(torch.equal(r, torch.ones_like(r)) for r in algorithm.last_rates())
    assert algorithm.step_metrics()["capacity"] == 1.0
    algorithm.on_task_end(task_id=1, model=model, task_data=None)
    # task 2: rates < 1 where importance accumulated; observed gradients are the adjusted ones
    algorithm.on_task_start(task_id=2, model=model)
    applied, step_masks = _train_step(algorithm, model, 2, optimizer)
    assert all((r <= 1).all() for r in algorithm.last_rates())
    assert any((r < 1).any() for r in algorithm.last_rates())
    raw = applied.abs().sum(dim=1)
    normalised = (raw - raw.min()) / (raw.max() - raw.min() + 1e-8)
    # the step's own soft training mask (the embeddings have moved since)
    assert_close(algorithm.tracker.store.accumulator_fc1, normalised * step_masks["fc1"].detach())


def test_state_dict_round_trip_restores_importance():
    model = _model(hidden=(3, 2), tasks=2)
    algorithm = _algorithm(importance_summing_strategy="add_all")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for task_id in (1, 2):
        algorithm.on_task_start(task_id=task_id, model=model)
        _train_step(algorithm, model, task_id, optimizer)
        algorithm.on_task_end(task_id=task_id, model=model, task_data=None)
    buffer = io.BytesIO()
    torch.save(algorithm.state_dict(), buffer)
    buffer.seek(0)
    restored = _algorithm(importance_summing_strategy="add_all")
    restored.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    for key in ("fc1", "fc2"):
        assert_close(
            restored.tracker.store.summative()[key], algorithm.tracker.store.summative()[key]
        )
        assert torch.count_nonzero(restored.tracker.store.summative()[key]) > 0
    assert restored.tracker.store.task_ids.tolist() == [1, 2]
    assert_close(
        restored.tracker.store.task_importance(1)["fc1"],
        algorithm.tracker.store.task_importance(1)["fc1"],
    )


def test_task_summary_reports_importance_and_capacity():
    model = _model(hidden=(3, 2), tasks=1)
    algorithm = _algorithm(base_importance=0.5)
    algorithm.on_task_start(task_id=1, model=model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    _train_step(algorithm, model, 1, optimizer)
    algorithm.on_task_end(task_id=1, model=model, task_data=None)
    summary = algorithm.task_summary(task_id=1, model=model)
    assert summary["capacity"] == 1.0
    task = algorithm.tracker.store.task_importance(1)["fc1"]
    assert summary["importance"]["fc1"]["task_mean"] == pytest.approx(float(task.mean()))
    assert summary["importance"]["fc1"]["task_min"] >= 0.5
    assert set(summary["importance"]) == {"fc1", "fc2"}


# -- validation -------------------------------------------------------------------------------

INVALID = [
    ({"adjustment_intensity": 0.0}, ValueError, "adjustment_intensity must be in"),
    ({"adjustment_intensity": "x"}, TypeError, "adjustment_intensity must be a number"),
    ({"importance_type": "weights"}, ValueError, "importance_type 'weights'.*activation_abs"),
    ({"importance_summing_strategy": "sum"}, ValueError, "importance_summing_strategy.*add_all"),
    ({"importance_scheduler_type": "x"}, ValueError, "importance_scheduler_type.*sparsity_reg"),
    (
        {"neuron_to_weight_importance_aggregation_mode": "median"},
        ValueError,
        "neuron_to_weight_importance_aggregation_mode 'median'.*min, max, mean",
    ),
    ({"mask_sparsity_reg_factor": -1.0}, ValueError, "mask_sparsity_reg_factor"),
    ({"s_max": 0.5}, ValueError, "s_max must be in"),
    ({"clamp_threshold": -1}, ValueError, "clamp_threshold"),
    ({"mask_sparsity_reg_mode": "both"}, ValueError, "original, cross"),
    ({"base_importance": -0.1}, ValueError, r"base_importance must be in \[0.0, inf\)"),
    ({"base_mask_sparsity_reg": 0.0}, ValueError, r"base_mask_sparsity_reg must be in \(0.0"),
    ({"base_linear": 0}, ValueError, r"base_linear must be in \(0.0"),
    ({"base_linear": True}, TypeError, "base_linear must be a number"),
    ({"filter_by_cumulative_mask": "yes"}, TypeError, "filter_by_cumulative_mask must be a bool"),
    ({"filter_unmasked_importance": 1}, TypeError, "filter_unmasked_importance must be a bool"),
    ({"step_multiply_training_mask": None}, TypeError, "step_multiply_training_mask must be a"),
    ({"task_embedding_init_mode": "N11"}, ValueError, "task_embedding_init_mode.*U-11"),
    ({"embedding_clamp": -6}, ValueError, "embedding_clamp"),
    (
        {"importance_summing_strategy": "linear_decrease"},
        ValueError,
        "'linear_decrease' requires importance_summing_strategy_linear_step",
    ),
    (
        {"importance_summing_strategy": "exponential_decrease"},
        ValueError,
        "'exponential_decrease' requires importance_summing_strategy_exponential_rate",
    ),
    (
        {"importance_summing_strategy": "log_decrease"},
        ValueError,
        "'log_decrease' requires importance_summing_strategy_log_base",
    ),
    (
        {
            "importance_summing_strategy": "linear_decrease",
            "importance_summing_strategy_linear_step": 0.0,
        },
        ValueError,
        r"importance_summing_strategy_linear_step must be in \(0.0",
    ),
    (
        {
            "importance_summing_strategy": "exponential_decrease",
            "importance_summing_strategy_exponential_rate": 1.0,
        },
        ValueError,
        r"importance_summing_strategy_exponential_rate must be in \(1.0",
    ),
    (
        {
            "importance_summing_strategy": "log_decrease",
            "importance_summing_strategy_log_base": 0.5,
        },
        ValueError,
        r"importance_summing_strategy_log_base must be in \(1.0",
    ),
]


@pytest.mark.parametrize(("options", "error", "fragment"), INVALID)
def test_invalid_parameters(options, error, fragment):
    with pytest.raises(error, match=fragment):
        _algorithm(**options)


def test_defaults_are_the_reference_preset_and_keyword_only():
    """Omitted parameters take docs/spec.md §5's preset values (the CLI's defaults too)."""
    algorithm = FGAdaHAT()
    assert algorithm.adjustment_intensity == 1.5e-7
    assert algorithm.importance_type == "input_weight_gradient_abs_sum"
    assert algorithm.tracker.base_importance == 1e-8
    assert algorithm.rule.base_linear == 5.0
    assert algorithm.rule.base_mask_sparsity_reg == 0.1
    with pytest.raises(TypeError):
        FGAdaHAT(0.5, **{k: v for k, v in BASE.items() if k != "adjustment_intensity"})


def test_strategy_option_for_another_strategy_is_unused():
    algorithm = _algorithm(importance_summing_strategy_linear_step=2.0)
    assert algorithm.tracker.summing_option is None
    chosen = _algorithm(
        importance_summing_strategy="linear_decrease", importance_summing_strategy_linear_step=2.0
    )
    assert chosen.tracker.summing_option == 2.0
