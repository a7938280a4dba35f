"""The bundled digits source and the contract of build_continual_data on it."""

from __future__ import annotations

import math

import torch

from hatcl.data.base import ContinualData, DataConfig, build_continual_data
from hatcl.data.sources.digits import load_digits


def test_digits_shapes_normalisation_and_stratification():
    source = load_digits()
    assert source.train_x.shape == (1437, 1, 8, 8)
    assert source.test_x.shape == (360, 1, 8, 8)
    # kept compact: integer intensities 0..16 as bytes, normalised per batch
    assert source.train_x.dtype == torch.uint8 and source.train_y.dtype == torch.int64
    assert int(source.train_x.max()) == 16 and source.divisor == 16.0
    normalised = (source.train_x.double() / 16.0 - source.mean[0]) / source.std[0]
    assert abs(normalised.mean().item()) < 1e-5
    assert abs(normalised.std().item() - 1.0) < 1e-3
    assert torch.allclose(source.normalise(source.train_x).double(), normalised, atol=1e-5)
    # raw pixels are in [0, 16] -> [0, 1]; the normalised raw zero is -mean/std
    assert math.isclose(normalised.min().item(), source.background[0], abs_tol=1e-5)
    # stratified: every class holds 20% +- one image of its samples in the test split
    for c in range(10):
        n_test = int((source.test_y == c).sum())
        n_all = n_test + int((source.train_y == c).sum())
        assert abs(n_test - 0.2 * n_all) <= 1
    assert set(source.test_y.tolist()) == set(range(10))


def test_default_config_builds_five_permuted_digit_tasks():
    data = build_continual_data(DataConfig(), seed=0)
    assert isinstance(data, ContinualData)
    assert (data.source, data.scenario, data.input_shape) == ("digits", "permuted", (1, 8, 8))
    assert [t.task_id for t in data.tasks] == [1, 2, 3, 4, 5]
    for task in data.tasks:
        assert task.num_classes == 10 and task.class_labels == tuple(range(10))
        # 1437 training images: floor(143.7) = 143 validation, 1294 training
        assert (len(task.train), len(task.val), len(task.test)) == (1294, 143, 360)
        assert task.train.x.shape == (1294, 1, 8, 8) and task.train.x.dtype == torch.float32
        assert task.val.y.dtype == torch.int64


def test_validation_split_is_disjoint_and_fixed_across_seeds():
    source = load_digits()
    a = build_continual_data(DataConfig(scenario="split", num_tasks=1), seed=0).tasks[0]
    b = build_continual_data(DataConfig(scenario="split", num_tasks=1), seed=7).tasks[0]
    assert torch.equal(a.val.x, b.val.x)
    # train + val together are exactly the source training set (as multisets of rows)
    rows = torch.cat([a.train.x, a.val.x]).flatten(1)
    expected = source.normalise(source.train_x).flatten(1)
    assert rows.shape == expected.shape
    assert torch.allclose(
        torch.sort(rows.sum(1)).values, torch.sort(expected.sum(1)).values, atol=1e-4
    )
    train_keys = {tuple(r.tolist()) for r in a.train.x.flatten(1)}
    assert not any(tuple(r.tolist()) in train_keys for r in a.val.x.flatten(1))


def test_subsets_are_seeded_caps():
    config = DataConfig(train_subset=100, test_subset=50, val_fraction=0.1, num_tasks=2)
    a = build_continual_data(config, seed=3)
    b = build_continual_data(config, seed=3)
    task = a.tasks[0]
    assert (len(task.train), len(task.val), len(task.test)) == (90, 10, 50)
    assert torch.equal(task.train.x, b.tasks[0].train.x)
    c = build_continual_data(config, seed=4)
    assert not torch.equal(task.test.y, c.tasks[0].test.y)
