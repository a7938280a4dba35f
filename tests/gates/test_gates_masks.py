"""Mask layouts and validation: every invalid argument raises a ValueError naming it."""

import pathlib
import subprocess
import sys

import pytest
import torch

import hatcl.gates
from hatcl.gates import BinaryConcreteStochasticGates, GaussianStochasticGates

MU6 = torch.tensor([-0.5, 0.1, 0.2, 0.3, 0.4, 1.5])
CLAMPED6 = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4, 1.0])


def _eval_gates(mu, mask=None):
    return GaussianStochasticGates.from_pretrained(mu, mask=mask).eval()


def test_no_mask_one_gate_per_element_of_multi_dim_input():
    x = torch.randn(2, 2, 3)
    gated, _ = _eval_gates(MU6)(x)
    torch.testing.assert_close(gated, x * CLAMPED6.reshape(2, 3))


def test_per_element_mask_permutes_gates():
    mask = torch.tensor([[5, 4, 3], [2, 1, 0]])
    x = torch.randn(4, 2, 3)
    gated, _ = _eval_gates(MU6, mask)(x)
    torch.testing.assert_close(gated, x * CLAMPED6.flip(0).reshape(2, 3))


def test_grouped_mask_shares_gates():
    mask = torch.tensor([0, 0, 1, 1, 1, 2])
    x = torch.ones(2, 6)
    gated, _ = _eval_gates(torch.tensor([0.25, 0.5, 2.0]), mask)(x)
    torch.testing.assert_close(gated, torch.tensor([[0.25, 0.25, 0.5, 0.5, 0.5, 1.0]] * 2))


def test_per_channel_mask_for_nchw_input():
    mask = torch.arange(3).reshape(3, 1, 1)
    x = torch.randn(2, 3, 4, 5)
    gated, reg = _eval_gates(torch.tensor([-1.0, 0.5, 0.75]), mask)(x)
    torch.testing.assert_close(gated, x * torch.tensor([0.0, 0.5, 0.75]).reshape(1, 3, 1, 1))
    assert reg.shape == ()


def test_mask_with_batch_dim_gives_each_example_its_grouping():
    mask = torch.tensor([[0, 1, 2], [2, 2, 0]])
    x = torch.ones(2, 3)
    gated, _ = _eval_gates(torch.tensor([0.1, 0.2, 0.3]), mask)(x)
    torch.testing.assert_close(gated, torch.tensor([[0.1, 0.2, 0.3], [0.3, 0.3, 0.1]]))


def test_training_noise_differs_per_example_but_not_within_a_group():
    torch.manual_seed(0)
    gates = GaussianStochasticGates(2, mask=torch.tensor([0, 0, 0, 1]), std=0.1)
    gated, _ = gates(torch.ones(3, 4))
    torch.testing.assert_close(gated[:, 0:1].expand(3, 3), gated[:, 0:3])
    assert not torch.equal(gated[0], gated[1])


def test_mask_is_a_buffer_that_moves_and_stays_integer():
    gates = BinaryConcreteStochasticGates(2, mask=torch.tensor([0, 1, 1], dtype=torch.int32))
    assert dict(gates.named_buffers())["mask"].dtype == torch.long
    gates = gates.double()
    assert gates.mask.dtype == torch.long and gates.log_alpha_param.dtype == torch.float64
    gated, _ = gates(torch.ones(2, 3, dtype=torch.float64))
    assert gated.dtype == torch.float64


def test_mask_is_copied():
    mask = torch.tensor([0, 1])
    gates = GaussianStochasticGates(2, mask=mask)
    mask[0] = 1
    torch.testing.assert_close(gates.mask, torch.tensor([0, 1]))


INVALID = {
    "n_gates_zero": (GaussianStochasticGates, {"n_gates": 0}, "n_gates"),
    "n_gates_float": (GaussianStochasticGates, {"n_gates": 2.5}, "n_gates"),
    "n_gates_bool": (BinaryConcreteStochasticGates, {"n_gates": True}, "n_gates"),
    "std_zero": (GaussianStochasticGates, {"n_gates": 2, "std": 0.0}, "std"),
    "std_negative": (GaussianStochasticGates, {"n_gates": 2, "std": -1.0}, "std"),
    "std_nan": (GaussianStochasticGates, {"n_gates": 2, "std": float("nan")}, "std"),
    "temperature_zero": (
        BinaryConcreteStochasticGates,
        {"n_gates": 2, "temperature": 0.0},
        "temperature",
    ),
    "temperature_one": (
        BinaryConcreteStochasticGates,
        {"n_gates": 2, "temperature": 1.0},
        "temperature",
    ),
    "lower_bound_zero": (
        BinaryConcreteStochasticGates,
        {"n_gates": 2, "lower_bound": 0.0},
        "lower_bound",
    ),
    "upper_bound_one": (
        BinaryConcreteStochasticGates,
        {"n_gates": 2, "upper_bound": 1.0},
        "upper_bound",
    ),
    "eps_negative": (BinaryConcreteStochasticGates, {"n_gates": 2, "eps": -1e-3}, "eps"),
    "eps_half": (BinaryConcreteStochasticGates, {"n_gates": 2, "eps": 0.5}, "eps"),
    "reg_reduction": (
        GaussianStochasticGates,
        {"n_gates": 2, "reg_reduction": "avg"},
        "reg_reduction",
    ),
    "reg_weight_negative": (
        GaussianStochasticGates,
        {"n_gates": 2, "reg_weight": -0.1},
        "reg_weight",
    ),
    "reg_weight_string": (
        BinaryConcreteStochasticGates,
        {"n_gates": 2, "reg_weight": "1"},
        "reg_weight",
    ),
    "mask_not_tensor": (GaussianStochasticGates, {"n_gates": 2, "mask": [0, 1]}, "mask"),
    "mask_float": (
        GaussianStochasticGates,
        {"n_gates": 2, "mask": torch.tensor([0.0, 1.0])},
        "mask",
    ),
    "mask_bool": (
        GaussianStochasticGates,
        {"n_gates": 2, "mask": torch.tensor([False, True])},
        "mask",
    ),
    "mask_empty": (
        GaussianStochasticGates,
        {"n_gates": 2, "mask": torch.zeros(0, dtype=torch.long)},
        "mask",
    ),
    "mask_negative": (
        GaussianStochasticGates,
        {"n_gates": 2, "mask": torch.tensor([-1, 1])},
        "mask",
    ),
    "mask_max_too_small": (
        GaussianStochasticGates,
        {"n_gates": 3, "mask": torch.tensor([0, 1])},
        "n_gates - 1 = 2",
    ),
    "mask_max_too_large": (
        BinaryConcreteStochasticGates,
        {"n_gates": 2, "mask": torch.tensor([0, 2])},
        "n_gates - 1 = 1",
    ),
}


@pytest.mark.parametrize("case", INVALID)
def test_invalid_constructor_argument(case):
    gate_class, kwargs, message = INVALID[case]
    with pytest.raises(ValueError, match=message):
        gate_class(**kwargs)


@pytest.mark.parametrize("values", [torch.zeros(2, 2), torch.tensor([1, 2]), [0.1, 0.2]])
def test_from_pretrained_rejects_non_vector(values):
    with pytest.raises(ValueError, match="mu must be a 1-D floating-point tensor"):
        GaussianStochasticGates.from_pretrained(values)


def test_forward_rejects_1d_input():
    with pytest.raises(ValueError, match=r"at least 2 dimensions, got shape \(3,\)"):
        GaussianStochasticGates(3)(torch.ones(3))


def test_forward_rejects_wrong_numel_without_mask():
    with pytest.raises(ValueError, match=r"input shape \(2, 2, 2\) has 4 elements .* n_gates is 3"):
        BinaryConcreteStochasticGates(3)(torch.ones(2, 2, 2))


def test_forward_rejects_mask_that_does_not_broadcast():
    gates = GaussianStochasticGates(3, mask=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"mask of shape \(3,\) .* input_tensor shape \(2, 4\)"):
        gates(torch.ones(2, 4))


def test_forward_rejects_mask_with_more_dims_than_input():
    gates = GaussianStochasticGates(2, mask=torch.tensor([[[0, 1]]]))
    with pytest.raises(ValueError, match=r"mask of shape \(1, 1, 2\) .* shape \(3, 2\)"):
        gates(torch.ones(3, 2))


def test_forward_rejects_mask_with_other_batch_size():
    gates = GaussianStochasticGates(2, mask=torch.tensor([[0, 1], [1, 0]]))
    with pytest.raises(ValueError, match=r"mask of shape \(2, 2\) .* shape \(3, 2\)"):
        gates(torch.ones(3, 2))


def test_no_assert_used_for_argument_checking():
    package = pathlib.Path(hatcl.gates.__file__).parent
    for path in package.glob("*.py"):
        assert "assert " not in path.read_text(), path


def test_importing_the_package_is_lazy():
    code = (
        "import sys, hatcl.gates as g; from hatcl.gates.kinds import GATES; "
        "print('torch' in sys.modules, GATES.names(), 'select_features' in dir(g))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "('gaussian',", "'binary_concrete')", "True"]


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = hatcl.gates.no_such_name
