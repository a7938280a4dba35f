import pytest
import torch
from torch.testing import assert_close

from hatcl.functional.aggregation import (
    aggregate_max,
    aggregate_mean,
    aggregate_min,
    expand_input_units,
    neuron_to_bias,
    neuron_to_weight,
)

U1 = torch.tensor([1.0, 0.0, 1.0])  # layer 1: 3 units
U2 = torch.tensor([0.5, 1.0])  # layer 2: 2 units


def test_elementwise_aggregates():
    a = torch.tensor([1.0, 4.0])
    b = torch.tensor([3.0, 2.0])
    assert_close(aggregate_min(a, b), torch.tensor([1.0, 2.0]))
    assert_close(aggregate_max(a, b), torch.tensor([3.0, 4.0]))
    assert_close(aggregate_mean(a, b), torch.tensor([2.0, 3.0]))
    assert_close(aggregate_min(a[:, None], b[None, :]), torch.tensor([[1.0, 1.0], [3.0, 2.0]]))


def test_first_layer_takes_unit_value():
    got = neuron_to_weight(
        unit_values=U1, input_values=None, weight_shape=(3, 4), aggregate=aggregate_min
    )
    assert_close(got, torch.tensor([[1.0] * 4, [0.0] * 4, [1.0] * 4]))


@pytest.mark.parametrize(
    ("aggregate", "expected"),
    [
        (aggregate_min, [[0.5, 0.0, 0.5], [1.0, 0.0, 1.0]]),
        (aggregate_max, [[1.0, 0.5, 1.0], [1.0, 1.0, 1.0]]),
        (aggregate_mean, [[0.75, 0.25, 0.75], [1.0, 0.5, 1.0]]),
    ],
)
def test_second_linear_layer(aggregate, expected):
    got = neuron_to_weight(
        unit_values=U2, input_values=U1, weight_shape=torch.Size([2, 3]), aggregate=aggregate
    )
    assert_close(got, torch.tensor(expected))


def test_conv_weight_is_constant_over_kernel():
    got = neuron_to_weight(
        unit_values=U2, input_values=U1, weight_shape=(2, 3, 2, 2), aggregate=aggregate_min
    )
    assert got.shape == (2, 3, 2, 2)
    assert got.is_contiguous()
    expected = torch.tensor([[0.5, 0.0, 0.5], [1.0, 0.0, 1.0]])
    for kh in range(2):
        for kw in range(2):
            assert_close(got[:, :, kh, kw], expected)
    first = neuron_to_weight(
        unit_values=U1, input_values=None, weight_shape=(3, 1, 3, 3), aggregate=aggregate_min
    )
    assert_close(first, U1.reshape(3, 1, 1, 1).expand(3, 1, 3, 3))


def test_expand_input_units_matches_torch_flatten_order():
    channels, height, width = 2, 1, 3
    x = torch.arange(channels, dtype=torch.float32).reshape(1, channels, 1, 1)
    x = x.expand(1, channels, height, width)
    flat = torch.flatten(x, 1)[0]  # channel of each flattened position
    expanded = expand_input_units(torch.tensor([0.0, 1.0]), repeat=height * width)
    assert_close(expanded, flat)
    assert_close(expanded, torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]))
    same = torch.tensor([0.3, 0.7])
    assert_close(expand_input_units(same), same)


def test_conv_to_linear_flatten():
    conv_units = torch.tensor([0.2, 0.9])  # 2 channels, H*W = 3
    got = neuron_to_weight(
        unit_values=U2,
        input_values=conv_units,
        weight_shape=(2, 6),
        aggregate=aggregate_min,
        input_repeat=3,
    )
    expected = torch.tensor([[0.2, 0.2, 0.2, 0.5, 0.5, 0.5], [0.2, 0.2, 0.2, 0.9, 0.9, 0.9]])
    assert_close(got, expected)


def test_bias_takes_unit_value():
    assert_close(neuron_to_bias(U2), torch.tensor([0.5, 1.0]))


def test_size_mismatch_errors_name_both_sizes():
    with pytest.raises(ValueError, match=r"3 units.*\(2, 3\)"):
        neuron_to_weight(
            unit_values=U1, input_values=U1, weight_shape=(2, 3), aggregate=aggregate_min
        )
    with pytest.raises(ValueError, match=r"expand to 3 .* 6 input units"):
        neuron_to_weight(
            unit_values=U2, input_values=U1, weight_shape=(2, 6), aggregate=aggregate_min
        )
    with pytest.raises(ValueError, match="1-D"):
        neuron_to_weight(
            unit_values=U2[:, None], input_values=None, weight_shape=(2, 3), aggregate=min
        )
    with pytest.raises(ValueError, match="at least 2 dims"):
        neuron_to_weight(unit_values=U2, input_values=None, weight_shape=(2,), aggregate=min)
    with pytest.raises(ValueError, match="repeat"):
        expand_input_units(U1, repeat=0)
    with pytest.raises(ValueError, match="1-D"):
        neuron_to_bias(torch.zeros(2, 2))
