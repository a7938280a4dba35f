"""``hatcl run algorithm=fgadahat algorithm.importance_type=stochastic_gates``, tiny, MLP and CNN.

Checks the run completes, every task's importance is recorded for every mask key (within
[0, 1 + b_I]), and nothing of the gates is left in the model or the algorithm afterwards.
"""

import json

import pytest

from hatcl.cli_run import compose_config, run_from_config

TINY = [
    "algorithm=fgadahat",
    "algorithm.importance_type=stochastic_gates",
    "data.num_tasks=2",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.batch_size=32",
    "+data.train_subset=96",
    "+data.test_subset=40",
]
BACKBONES = {
    "mlp": ["backbone.hidden_dims=[16,8]"],
    "cnn": [
        "backbone=cnn",
        "data=split_digits",
        "backbone.channels=[4,4]",
        "backbone.kernel_sizes=[3,2]",
        "backbone.fc_dims=[8]",
    ],
}


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_tiny_run_with_stochastic_gates(backbone, tmp_path):
    cfg = compose_config([*TINY, *BACKBONES[backbone], f"output_dir={tmp_path / 'run'}"])
    assert cfg.algorithm.stochastic_gates_std == 0.5
    result = run_from_config(cfg)
    matrix = result.metrics["accuracy_matrix"]
    assert len(matrix) == 2 and len(matrix[1]) == 2
    model, algorithm = result.module.model, result.module.algorithm
    keys = set(model.backbone.unit_counts())
    tasks = json.loads((result.run_dir / "tasks.json").read_text())["tasks"]
    for task in tasks:
        assert set(task["importance"]) == keys
        for s in task["importance"].values():
            assert 0 <= s["task_min"] <= s["task_mean"] <= s["task_max"] <= 1 + 1e-6
    assert model.backbone.activation_transforms == {}
    assert algorithm.tracker.plugin.gates == {}
    assert not any("mu" in name.split(".") for name in model.state_dict())
    assert not any("gate" in name for name in algorithm.state_dict())
