"""Tiny end-to-end runs (2 tasks, 1 epoch, small subsets) through the CLI's compose API.

One per summing strategy, scheduler, importance type (every registered one, attribution
included), aggregation mode, AdaHAT mode and named experiment variant; each checks the run folder
reports capacity and rate stats.
"""

import json

import pytest

from hatcl.algorithms.registries import (
    ADAHAT_ADJUSTMENT_MODES,
    IMPORTANCE_SCHEDULERS,
    SUMMING_STRATEGIES,
)
from hatcl.cli_run import compose_config, group_options, run_from_config
from hatcl.importance.registry import IMPORTANCE_TYPES
from hatcl.masking.registries import AGGREGATIONS

TINY = [
    "data.num_tasks=2",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.batch_size=32",
    "trainer.log_every_n_steps=2",
    "+data.train_subset=96",
    "+data.test_subset=40",
]
STRATEGY_OPTIONS = {
    "linear_decrease": "algorithm.importance_summing_strategy_linear_step=1",
    "exponential_decrease": "algorithm.importance_summing_strategy_exponential_rate=2",
    "log_decrease": "algorithm.importance_summing_strategy_log_base=10",
}


def _run(tmp_path, *overrides):
    cfg = compose_config([*TINY, *overrides, f"output_dir={tmp_path / 'run'}"])
    result = run_from_config(cfg)
    metrics = result.metrics
    assert len(metrics["accuracy_matrix"]) == 2
    assert 0.0 <= metrics["final_capacity"] <= 1.0
    tasks = json.loads((result.run_dir / "tasks.json").read_text())["tasks"]
    curves = (result.run_dir / "training_curves.csv").read_text().splitlines()[0]
    assert "capacity" in curves and "rate_below_half/fc1" in curves
    return result, tasks


def test_default_algorithm_is_fgadahat():
    assert compose_config([]).algorithm.name == "fgadahat"


@pytest.mark.parametrize("strategy", SUMMING_STRATEGIES.names())
def test_each_summing_strategy(strategy, tmp_path):
    extra = [STRATEGY_OPTIONS[strategy]] if strategy in STRATEGY_OPTIONS else []
    _, tasks = _run(tmp_path, f"algorithm.importance_summing_strategy={strategy}", *extra)
    assert set(tasks[1]["importance"]) == {"fc1", "fc2", "fc3"}


@pytest.mark.parametrize("scheduler", IMPORTANCE_SCHEDULERS.names())
def test_each_scheduler(scheduler, tmp_path):
    result, _ = _run(tmp_path, f"algorithm.importance_scheduler_type={scheduler}")
    assert result.metrics["final_capacity"] < 1.0


@pytest.mark.parametrize("importance_type", IMPORTANCE_TYPES.names())
def test_each_importance_type(importance_type, tmp_path):
    _, tasks = _run(tmp_path, f"algorithm.importance_type={importance_type}")
    summary = tasks[0]["importance"]["fc1"]
    assert summary["task_max"] >= summary["task_mean"] >= summary["task_min"] >= 0


@pytest.mark.parametrize("mode", AGGREGATIONS.names())
def test_each_aggregation_mode(mode, tmp_path):
    _run(tmp_path, f"algorithm.neuron_to_weight_importance_aggregation_mode={mode}")


@pytest.mark.parametrize("mode", ADAHAT_ADJUSTMENT_MODES.names())
def test_adahat_modes(mode, tmp_path):
    _run(tmp_path, "algorithm=adahat", f"algorithm.adjustment_mode={mode}")


def _available_experiments():
    names = []
    for name in group_options("experiment"):
        cfg = compose_config([f"experiment={name}"])
        if cfg.algorithm.importance_type in IMPORTANCE_TYPES:
            names.append(name)
    return names


def test_experiment_variants_hold_reference_values():
    og = compose_config(["experiment=OG"]).algorithm
    assert og.importance_type == "output_weight_gradient_abs_sum"
    assert og.adjustment_intensity == 1e-7 and og.base_linear == 10
    ig = compose_config(["experiment=IG"]).algorithm
    assert ig.adjustment_intensity == 1.5e-7 and ig.base_linear == 5
    assert {"IG", "OG", "ICU", "CU", "AFI"} <= set(_available_experiments())


@pytest.mark.parametrize("name", ["ICU", "AFI"])
def test_experiment_variant_runs(name, tmp_path):
    _run(tmp_path, f"experiment={name}")
