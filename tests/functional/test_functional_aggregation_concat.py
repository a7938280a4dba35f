"""neuron_to_weight_concat: hand-computed tables for a layer reading concatenated parts."""

import pytest
import torch

from hatcl.functional.aggregation import aggregate_min, neuron_to_weight_concat


def test_each_column_aggregates_with_its_own_part_and_the_input_is_always_on():
    out = torch.tensor([0.2, 0.9])
    a = torch.tensor([0.5, 1.0])  # 2 units, 2 positions each (a flatten)
    b = torch.tensor([0.1])  # 1 unit, 1 position
    table = neuron_to_weight_concat(
        unit_values=out,
        input_parts=[(a, 2, 2), (None, 1, 1), (b, 1, 1)],
        weight_shape=(2, 6),
        aggregate=aggregate_min,
    )
    expected = torch.tensor(
        [
            [0.2, 0.2, 0.2, 0.2, 0.2, 0.1],
            [0.5, 0.5, 0.9, 0.9, 0.9, 0.1],
        ]
    )
    torch.testing.assert_close(table, expected)


def test_conv_kernels_repeat_the_table():
    table = neuron_to_weight_concat(
        unit_values=torch.tensor([0.3]),
        input_parts=[(torch.tensor([0.7, 0.1]), 2, 1)],
        weight_shape=(1, 2, 3, 3),
        aggregate=torch.mul,
    )
    assert table.shape == (1, 2, 3, 3)
    assert torch.allclose(table[0, 0], torch.full((3, 3), 0.21))
    assert torch.allclose(table[0, 1], torch.full((3, 3), 0.03))


def test_parts_that_do_not_add_up_to_the_inputs_are_refused():
    with pytest.raises(ValueError, match="give 3 input features but weight_shape"):
        neuron_to_weight_concat(
            unit_values=torch.ones(2),
            input_parts=[(torch.ones(2), 2, 1), (None, 1, 1)],
            weight_shape=(2, 4),
            aggregate=aggregate_min,
        )
