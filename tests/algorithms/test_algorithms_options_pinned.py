"""What each option does, pinned: a value that moves in a known direction, or a hand-computed one.

Every option goes the user's way, through the CLI's composition (``compose_config``) and
``build_algorithm``, into a short plain loop (``hatcl.Learner``) on a tiny MLP: task 1 trains a
few steps, task 2 takes one step, and the network capacity of that step (the mean adjustment rate,
docs/spec.md §4) is compared across the option's values. An option that were ignored would give
the default's capacity, so each ordering below fails.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import hatcl
from hatcl.backbones.mlp import MLPBackbone
from hatcl.cli_run import compose_config
from hatcl.importance.registry import IMPORTANCE_TYPES
from hatcl.training.experiment import ExperimentConfig, build_algorithm


def _algorithm(*overrides: str):
    config = ExperimentConfig.from_mapping(compose_config(list(overrides)))
    return build_algorithm(config.algorithm)


def _task_two_capacity(algorithm) -> float:
    """Capacity of task 2's first step after 6 steps of task 1 (same seed and data every call)."""
    torch.manual_seed(0)
    x, y = torch.randn(32, 12), torch.randint(0, 3, (32,))
    backbone = MLPBackbone(input_shape=(12,), hidden_dims=(48, 32))  # > 10 units: R_l > 0
    learner = hatcl.Learner(backbone=backbone, algorithm=algorithm)
    for task_id, steps in ((1, 6), (2, 1)):
        learner.start_task(task_id, num_classes=3, num_batches=steps)
        optimizer = torch.optim.SGD(learner.trainable_parameters(), lr=0.1)
        for _ in range(steps):
            optimizer.zero_grad()
            loss = F.cross_entropy(learner(x, y), y) + learner.penalty()
            loss.backward()
            learner.before_optimizer_step()
            optimizer.step()
            learner.after_optimizer_step()
        if task_id == 1:
            learner.end_task()
    return float(algorithm.step_metrics()["capacity"])


FG = ("algorithm=fgadahat", "algorithm.adjustment_intensity=0.5")


@pytest.mark.slow
def test_aggregation_modes_order_the_rates():
    """I^w = Agg(I_i, I_j): min <= mean <= max elementwise, and the rate falls as I grows."""
    capacity = {
        mode: _task_two_capacity(
            _algorithm(*FG, f"algorithm.neuron_to_weight_importance_aggregation_mode={mode}")
        )
        for mode in ("min", "mean", "max")
    }
    assert capacity["min"] > capacity["mean"] > capacity["max"], capacity


def test_schedulers_order_the_rates():
    """At task 2 (b_L = 5, M^sum <= 1): c_sparsity = R + b_R < c_summative < c_linear (t = 2)."""
    capacity = {
        name: _task_two_capacity(_algorithm(*FG, f"algorithm.importance_scheduler_type={name}"))
        for name in ("sparsity_reg", "summative_mask_sparsity_reg", "linear_sparsity_reg")
    }
    assert (
        capacity["sparsity_reg"]
        > capacity["summative_mask_sparsity_reg"]
        > capacity["linear_sparsity_reg"]
    ), capacity


ADA = ("algorithm=adahat", "algorithm.adjustment_intensity=0.05")


def test_adahat_modes_order_the_rates():
    """r = alpha / (eps + R) in adahat; alpha / eps (larger) in no_reg; no_sum puts t = 2 > I."""
    capacity = {
        mode: _task_two_capacity(_algorithm(*ADA, f"algorithm.adjustment_mode={mode}"))
        for mode in ("adahat_no_sum", "adahat", "adahat_no_reg")
    }
    assert capacity["adahat_no_sum"] < capacity["adahat"] < capacity["adahat_no_reg"], capacity


def test_adahat_no_sum_rate_is_the_hand_computed_one_where_sparsity_is_known():
    """adahat_no_sum: every rate is r / (t + r); with alpha -> huge it tends to 1, tiny to 0."""
    no_sum = ("algorithm=adahat", "algorithm.adjustment_mode=adahat_no_sum")
    high = _task_two_capacity(_algorithm(*no_sum, "algorithm.adjustment_intensity=1e6"))
    low = _task_two_capacity(_algorithm(*no_sum, "algorithm.adjustment_intensity=1e-9"))
    # r = alpha / (0.1 + R) with R in [0, 1]: r / (2 + r) within 1e-5 of 1, resp. of 0
    assert high == pytest.approx(1.0, abs=1e-4) and low == pytest.approx(0.0, abs=1e-7)


#: docs/spec.md §5, §6: the reference protocol's variants (abbreviation -> importance type,
#: alpha, b_L); OG, DL and GS use alpha 1e-7 and b_L 10, the others the preset's 1.5e-7 and 5.
PRESETS = {
    "IG": ("input_weight_gradient_abs_sum", 1.5e-7, 5.0),
    "OG": ("output_weight_gradient_abs_sum", 1e-7, 10.0),
    "ICU": ("input_weight_abs_sum_x_activation_abs", 1.5e-7, 5.0),
    "CU": ("output_weight_abs_sum_x_activation_abs", 1.5e-7, 5.0),
    "AFI": ("input_weight_gradient_square_sum_x_activation_abs", 1.5e-7, 5.0),
    "II": ("internal_influence_abs", 1.5e-7, 5.0),
    "DL": ("deeplift_abs", 1e-7, 10.0),
    "GS": ("gradientshap_abs", 1e-7, 10.0),
    "FA": ("feature_ablation_abs", 1.5e-7, 5.0),
}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_experiment_preset_reaches_the_algorithm(name):
    importance_type, alpha, base_linear = PRESETS[name]
    algorithm = _algorithm(f"experiment={name}")
    assert algorithm.importance_type == importance_type
    measure = IMPORTANCE_TYPES.get(importance_type)
    assert algorithm.tracker.measure.compute.compute is measure.compute  # first-call check wraps
    assert (algorithm.rule.alpha, algorithm.rule.base_linear) == (alpha, base_linear)


def test_a_preset_changes_what_is_learned():
    """OG reads the next layer's gradients, IG this layer's: task 2's capacities differ."""
    og = _task_two_capacity(_algorithm("experiment=OG", "algorithm.adjustment_intensity=0.5"))
    ig = _task_two_capacity(_algorithm("experiment=IG", "algorithm.adjustment_intensity=0.5"))
    assert og != ig
