"""One tiny end-to-end run per scenario on real Fashion-MNIST (Debian dataset-fashion-mnist)."""

import json

import pytest

from hatcl.cli_run import compose_config, run_from_config
from hatcl.data.registries import SCENARIOS

pytest.importorskip("torch")


def _fashion_mnist_installed() -> bool:
    from hatcl.data.base import DataConfig, load_source

    try:
        load_source(DataConfig(source="fashion_mnist"))
    except FileNotFoundError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _fashion_mnist_installed(),
    reason="Fashion-MNIST IDX files not found (install the Debian package dataset-fashion-mnist)",
)

RUNS = {
    "permuted": ["data=permuted_fashion_mnist", "backbone=mlp", "backbone.hidden_dims=[64,32]"],
    "split": [
        "data=split_fashion_mnist",
        "backbone=cnn",
        "backbone.channels=[8,8,8]",
        "backbone.fc_dims=[32,32]",
        "backbone.conv_dropout=0.0",
        "backbone.fc_dropout=0.0",
        "data.class_order=[0,1,2,3]",
    ],
    "rotated": ["data=rotated_fashion_mnist", "backbone=mlp", "backbone.hidden_dims=[64,32]"],
}


def test_every_scenario_has_a_run():
    assert set(RUNS) == set(SCENARIOS.names())


@pytest.mark.parametrize("scenario", sorted(RUNS))
def test_tiny_hat_run_on_real_fashion_mnist(tmp_path, scenario):
    overrides = [
        *RUNS[scenario],
        "algorithm=hat",
        "data.num_tasks=2",
        "data.train_subset=1200",
        "trainer.batch_size=32",
        "data.test_subset=300",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        f"output_dir={tmp_path}",
    ]
    run_from_config(compose_config(overrides))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["bwt"] == 0.0
    # well above chance (0.1 for 10 classes, 0.5 for the 2-class split tasks)
    chance = 0.5 if scenario == "split" else 0.1
    assert metrics["accuracy_matrix"][0][0] > chance + 0.2
