"""Real sources: Fashion-MNIST from the Debian package, generated MNIST-1D."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hatcl.data.base import DataConfig, build_continual_data

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(
    not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist not installed (apt-get install it)",
)
@pytest.mark.parametrize("scenario", ["permuted", "split", "rotated"])
def test_fashion_mnist_from_debian_path(scenario, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "fashion-cache"  # decoded once for all scenarios
    config = DataConfig(
        cache_dir=str(cache),
        source="fashion_mnist",
        scenario=scenario,
        num_tasks=2,
        train_subset=200,
        test_subset=100,
        root=None,
    )
    data = build_continual_data(config, seed=0)
    assert data.input_shape == (1, 28, 28)
    task = data.tasks[1]
    assert (len(task.train), len(task.val), len(task.test)) == (180, 20, 100)
    assert task.train.x.dtype == torch.float32
    if scenario == "split":
        assert data.tasks[0].class_labels == (0, 1, 2, 3, 4)
        assert set(task.test.y.tolist()) <= set(range(5))
    else:
        assert task.num_classes == 10


def test_mnist1d_generated_offline():
    pytest.importorskip("mnist1d")
    import random

    import numpy as np

    random.seed(123)
    np.random.seed(123)
    expected_py, expected_np = random.random(), np.random.random()
    random.seed(123)
    np.random.seed(123)
    data = build_continual_data(DataConfig(source="mnist1d", num_tasks=2), seed=0)
    # the package reseeds the global generators; the loader restores them
    assert random.random() == expected_py and np.random.random() == expected_np
    assert data.input_shape == (1, 40)
    task = data.tasks[0]
    assert (len(task.train), len(task.val), len(task.test)) == (3600, 400, 1000)
    assert set(task.test.y.tolist()) == set(range(10))
