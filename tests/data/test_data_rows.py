"""Per-batch path: lazy rows gather, normalise and transform exactly what a copy would hold."""

from __future__ import annotations

import pytest
import torch

from hatcl.data.base import DataConfig, build_continual_data
from hatcl.data.rows import ConcatenatedRows, PlannedRows
from hatcl.data.source import Normalisation
from hatcl.data.transforms import PixelPermutation, Rotation
from hatcl.training.batches import TensorBatches


def _source() -> torch.Tensor:
    # 3 samples of one 2x2 byte image: sample k holds k*10 + (1, 2, 3, 4)
    return torch.tensor(
        [[[[1, 2], [3, 4]]], [[[11, 12], [13, 14]]], [[[21, 22], [23, 24]]]], dtype=torch.uint8
    )


def test_normalisation_by_hand():
    out = Normalisation(divisor=2.0, mean=(1.0,), std=(4.0,))(_source()[:1])
    # (v / 2 - 1) / 4 for v = 1, 2, 3, 4
    assert out.dtype == torch.float32
    assert out.flatten().tolist() == [-0.125, 0.0, 0.125, 0.25]


def test_permuted_batch_equals_the_permutation_written_out():
    permute = PixelPermutation(torch.tensor([3, 0, 2, 1]))
    rows = PlannedRows(
        _source(),
        indices=torch.tensor([2, 0]),
        apply=lambda raw: permute(Normalisation(divisor=1.0, mean=(0.0,), std=(1.0,))(raw)),
        dtype=torch.float32,
    )
    assert len(rows) == 2 and rows.shape == (2, 1, 2, 2)
    # output pixel i is input pixel perm[i]: (4, 1, 3, 2) + 10k
    assert rows[torch.tensor([0])].flatten().tolist() == [24.0, 21.0, 23.0, 22.0]
    assert rows[1].flatten().tolist() == [4.0, 1.0, 3.0, 2.0]
    assert rows[-1].flatten().tolist() == [4.0, 1.0, 3.0, 2.0]
    assert rows[:].shape == (2, 1, 2, 2)
    assert torch.equal(rows[torch.tensor([True, False])], rows[:1])
    with pytest.raises(IndexError):
        rows[2]


def test_rotation_of_a_batch_by_90_degrees_equals_rot90_and_reuses_its_grid():
    rotate = Rotation(angle=90.0)
    x = torch.arange(2 * 9, dtype=torch.float32).reshape(2, 1, 3, 3)
    assert torch.allclose(rotate(x), torch.rot90(x, 1, dims=(2, 3)), atol=1e-5)
    assert torch.allclose(rotate(x[:1]), torch.rot90(x[:1], 1, dims=(2, 3)), atol=1e-5)
    assert len(rotate._grids) == 1  # one cached grid of one image


def test_labels_are_relabelled_per_batch():
    table = torch.tensor([-1, 1, 0])
    y = PlannedRows(
        torch.tensor([2, 1, 2, 0]), indices=torch.tensor([0, 1, 2]), apply=table.__getitem__
    )
    assert y[torch.tensor([1, 0])].tolist() == [1, 0]


def test_lazy_concatenation_keeps_each_parts_rows_in_order():
    a = PlannedRows(_source(), indices=torch.tensor([0, 1]))
    b = PlannedRows(_source(), indices=torch.tensor([2]))
    both = torch.cat([a, b])
    assert isinstance(both, ConcatenatedRows) and len(both) == 3
    picked = both[torch.tensor([2, 0, 1])]
    assert picked[:, 0, 0, 0].tolist() == [21, 1, 11]
    # any other torch function sees the materialised rows
    assert torch.equal(both, _source())
    assert both.flatten(1).shape == (3, 4)


def test_batches_of_lazy_rows_equal_batches_of_the_materialised_split():
    task = build_continual_data(DataConfig(num_tasks=2), seed=3).tasks[1]
    x, y = task.train.x.materialize(), task.train.y.materialize()
    lazy = TensorBatches(
        task.train.x,
        task.train.y,
        batch_size=100,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    eager = TensorBatches(
        x, y, batch_size=100, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    for (lx, ly), (ex, ey) in zip(lazy, eager, strict=True):
        assert torch.equal(lx, ex) and torch.equal(ly, ey)


def test_memory_of_a_task_is_its_plan_not_a_copy():
    data = build_continual_data(DataConfig(num_tasks=3), seed=0)
    first, last = data.tasks[0], data.tasks[-1]
    # every task shares the one compact source tensor
    assert first.train.x.source.data_ptr() == last.train.x.source.data_ptr()
    assert first.train.x.source.dtype == torch.uint8
    assert first.test.x.indices is None  # all test rows: no index tensor at all


def test_an_unknown_attribute_fails_without_building_the_split():
    built = []
    rows = PlannedRows(
        _source(), indices=torch.tensor([0, 1]), apply=lambda raw: built.append(1) or raw
    )
    with pytest.raises(AttributeError, match="no attribute 'not_a_tensor_attribute'"):
        getattr(rows, "not_a_tensor_attribute")  # noqa: B009
    assert built == []
    assert rows.float().shape == (2, 1, 2, 2)  # a tensor attribute: the materialised split
    assert built == [1]
