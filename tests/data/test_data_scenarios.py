"""Scenario invariants: permutations, split partitions and relabelling, rotations."""

from __future__ import annotations

import math

import pytest
import torch

from hatcl.data.base import DataConfig, build_continual_data
from hatcl.data.scenarios import group_sizes, plan_permuted, plan_rotated, plan_split
from hatcl.data.sources.digits import load_digits
from hatcl.data.transforms import PixelPermutation, rotate_images


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_permutations_are_permutations_and_differ_per_task(digits):
    plans = plan_permuted(source=digits, config=DataConfig(num_tasks=4), seed=0)
    perms = [p.transform.permutation for p in plans]
    for perm in perms:
        assert torch.equal(torch.sort(perm).values, torch.arange(64))
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.equal(perms[i], perms[j])
    again = plan_permuted(source=digits, config=DataConfig(num_tasks=4), seed=0)
    assert all(torch.equal(a.transform.permutation, p) for a, p in zip(again, perms))
    other = plan_permuted(source=digits, config=DataConfig(num_tasks=4), seed=1)
    assert not torch.equal(other[0].transform.permutation, perms[0])


def test_permuted_task_inputs_are_pixel_permutations_of_the_same_samples(digits):
    data = build_continual_data(DataConfig(num_tasks=2, permute_first_task=False), seed=5)
    first, second = data.tasks
    # task 1 unpermuted: its test set is the source test set
    test_x = _normalised(digits, digits.test_x)
    assert torch.equal(first.test.x, test_x)
    perm = plan_permuted(
        source=digits, config=DataConfig(num_tasks=2, permute_first_task=False), seed=5
    )[1].transform.permutation
    expected = test_x.flatten(1)[:, perm].reshape(test_x.shape)
    assert torch.equal(second.test.x, expected)
    assert torch.equal(second.test.y, first.test.y)


def test_pixel_permutation_hand_example():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    out = PixelPermutation(torch.tensor([3, 0, 2, 1]))(x)
    assert out.tolist() == [[[[4.0, 1.0], [3.0, 2.0]]]]


def test_group_sizes():
    assert group_sizes(10, 5) == (2, 2, 2, 2, 2)
    assert group_sizes(10, 3) == (4, 3, 3)
    assert group_sizes(10, 10) == (1,) * 10
    assert group_sizes(100, 10) == (10,) * 10


@pytest.mark.parametrize("num_tasks", [1, 3, 5])
def test_split_classes_disjoint_complete_and_relabelled(digits, num_tasks):
    config = DataConfig(scenario="split", num_tasks=num_tasks, shuffle_classes=True)
    data = build_continual_data(config, seed=2)
    seen = [c for t in data.tasks for c in t.class_labels]
    assert sorted(seen) == list(range(10))
    for task in data.tasks:
        k = len(task.class_labels)
        assert task.num_classes == k
        for split, src_y in ((task.test, digits.test_y),):
            assert set(split.y.tolist()) == set(range(k))
            # relabel: head output i is class_labels[i]
            originals = torch.tensor(task.class_labels)[split.y]
            assert torch.isin(originals, torch.tensor(task.class_labels)).all()
            expected = sum(int((src_y == c).sum()) for c in task.class_labels)
            assert len(split) == expected


def test_split_class_order_configured_seeded_and_natural(digits):
    natural = plan_split(source=digits, config=DataConfig(scenario="split"), seed=0)
    assert [p.class_labels for p in natural] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    given = plan_split(
        source=digits,
        config=DataConfig(scenario="split", num_tasks=2, class_order=(9, 3, 5, 0, 1)),
        seed=0,
    )
    assert [p.class_labels for p in given] == [(9, 3, 5), (0, 1)]
    shuffled = DataConfig(scenario="split", shuffle_classes=True)
    a = plan_split(source=digits, config=shuffled, seed=0)
    b = plan_split(source=digits, config=shuffled, seed=0)
    c = plan_split(source=digits, config=shuffled, seed=1)
    assert [p.class_labels for p in a] == [p.class_labels for p in b]
    assert [p.class_labels for p in a] != [p.class_labels for p in c]


def test_split_relabelling_matches_original_labels(digits):
    config = DataConfig(scenario="split", num_tasks=2, class_order=(7, 2, 9, 4, 0, 1, 3, 5, 6, 8))
    task = build_continual_data(config, seed=0).tasks[0]
    assert task.class_labels == (7, 2, 9, 4, 0)
    mask = torch.isin(digits.test_y, torch.tensor(task.class_labels))
    assert torch.equal(task.test.x, _normalised(digits, digits.test_x[mask]))
    table = {7: 0, 2: 1, 9: 2, 4: 3, 0: 4}
    assert task.test.y.tolist() == [table[c] for c in digits.test_y[mask].tolist()]


def test_rotation_by_90_equals_rot90_and_0_is_identity():
    x = torch.randn(3, 2, 7, 7)
    assert torch.allclose(rotate_images(x, angle=90.0), torch.rot90(x, 1, dims=(2, 3)), atol=1e-5)
    assert torch.allclose(rotate_images(x, angle=-90.0), torch.rot90(x, -1, dims=(2, 3)), atol=1e-5)
    assert torch.allclose(rotate_images(x, angle=180.0), torch.rot90(x, 2, dims=(2, 3)), atol=1e-5)
    assert torch.equal(rotate_images(x, angle=0.0), x)
    assert torch.equal(rotate_images(x, angle=360.0), x)


def test_rotation_fills_with_background_and_keeps_centre():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0  # the centre pixel stays put under any rotation
    out = rotate_images(x, angle=45.0, fill=(-0.5,))
    assert math.isclose(out[0, 0, 4, 4].item(), 1.0, abs_tol=1e-6)
    # the corner's centre is 4*sqrt(2) = 5.66 pixels from the centre; rotated by 45 degrees it
    # samples 1.2 pixels beyond the border: pure fill value, not the zero padding
    assert math.isclose(out[0, 0, 0, 0].item(), -0.5, abs_tol=1e-6)


def test_rotated_scenario_angles(digits):
    plans = plan_rotated(source=digits, config=DataConfig(scenario="rotated", num_tasks=4), seed=0)
    assert [p.transform.angle for p in plans] == [0.0, 45.0, 90.0, 135.0]
    given = plan_rotated(
        source=digits,
        config=DataConfig(scenario="rotated", num_tasks=2, angles=(10, 20)),
        seed=0,
    )
    assert [p.transform.angle for p in given] == [10.0, 20.0]
    data = build_continual_data(
        DataConfig(scenario="rotated", num_tasks=2, angles=(0.0, 90.0)), seed=0
    )
    test_x = _normalised(digits, digits.test_x)
    assert torch.equal(data.tasks[0].test.x, test_x)
    assert torch.allclose(data.tasks[1].test.x, torch.rot90(test_x, 1, dims=(2, 3)), atol=1e-5)


def test_rotated_rejects_one_dimensional_sources(digits):
    from dataclasses import replace

    flat = replace(digits, train_x=digits.train_x.reshape(-1, 1, 64))
    with pytest.raises(ValueError, match="scenario 'rotated' needs square images"):
        plan_rotated(source=flat, config=DataConfig(scenario="rotated"), seed=0)


def _normalised(source, raw):
    """The normalisation written out: raw / divisor, minus the mean, over the std (float32)."""
    scaled = raw.to(torch.float32) / source.divisor
    return (scaled - source.mean[0]) / source.std[0]
