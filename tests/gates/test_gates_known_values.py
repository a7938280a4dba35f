"""Known values in eval mode, hand-computed from mu / log_alpha."""

import pytest
import torch

from hatcl.gates import BinaryConcreteStochasticGates, GaussianStochasticGates

MU = torch.tensor([-0.2, 0.3, 0.8, 1.4])
# Phi(mu / 0.5) = Phi([-0.4, 0.6, 1.6, 2.8]) from the standard normal table.
GAUSS_PROBS = torch.tensor([0.34457826, 0.72574688, 0.94520071, 0.99744487])
LOG_ALPHA = torch.tensor([-3.0, 0.0, 1.0, 3.0])
# sigmoid(log_alpha - (2/3) * log(0.1 / 1.1)), the shift being +1.59859685.
CONCRETE_PROBS = torch.tensor([0.19759355, 0.83182218, 0.93077122, 0.99003436])
# sigmoid(log_alpha) * 1.2 - 0.1, before clamping.
CONCRETE_MEANS = torch.tensor([-0.04308895, 0.5, 0.77727029, 1.04308895])
X = torch.tensor([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 2.0, -2.0]])


def _gaussian(**kwargs):
    return GaussianStochasticGates.from_pretrained(MU, **kwargs).eval()


def _concrete(**kwargs):
    return BinaryConcreteStochasticGates.from_pretrained(LOG_ALPHA, **kwargs).eval()


def test_gaussian_eval_output_is_input_times_clamped_mu():
    gated, _ = _gaussian()(X)
    expected = X * torch.tensor([0.0, 0.3, 0.8, 1.0])
    torch.testing.assert_close(gated, expected)


def test_gaussian_gate_values_and_probs():
    gates = _gaussian()
    torch.testing.assert_close(gates.get_gate_values(), torch.tensor([0.0, 0.3, 0.8, 1.0]))
    torch.testing.assert_close(gates.get_gate_values(clamp=False), MU)
    torch.testing.assert_close(gates.get_gate_active_probs(), GAUSS_PROBS)


def test_gaussian_probs_follow_std():
    gates = GaussianStochasticGates.from_pretrained(torch.tensor([0.25, -0.5]), std=0.25)
    # Phi(1) and Phi(-2)
    torch.testing.assert_close(
        gates.get_gate_active_probs(), torch.tensor([0.84134475, 0.02275013])
    )


@pytest.mark.parametrize(
    ("reduction", "expected"),
    [
        ("sum", torch.tensor(0.3 * 3.01297072)),
        ("mean", torch.tensor(0.3 * 0.75324268)),
        ("none", 0.3 * GAUSS_PROBS),
    ],
)
def test_gaussian_reg_reductions(reduction, expected):
    _, reg = _gaussian(reg_weight=0.3, reg_reduction=reduction)(X)
    torch.testing.assert_close(reg, expected)


def test_concrete_eval_output():
    gated, _ = _concrete()(X)
    torch.testing.assert_close(gated, X * torch.tensor([0.0, 0.5, 0.77727029, 1.0]))


def test_concrete_gate_values_and_probs():
    gates = _concrete()
    torch.testing.assert_close(gates.get_gate_values(), torch.tensor([0.0, 0.5, 0.77727029, 1.0]))
    torch.testing.assert_close(gates.get_gate_values(clamp=False), CONCRETE_MEANS)
    torch.testing.assert_close(gates.get_gate_active_probs(), CONCRETE_PROBS)


def test_concrete_probs_follow_stretch_and_temperature():
    gates = BinaryConcreteStochasticGates.from_pretrained(
        torch.zeros(1), temperature=0.5, lower_bound=-0.5, upper_bound=2.0
    )
    # sigmoid(0 - 0.5 * log(0.25)) = sigmoid(log 2) = 2/3; mean sigmoid(0) * 2.5 - 0.5 = 0.75
    torch.testing.assert_close(gates.get_gate_active_probs(), torch.tensor([2.0 / 3.0]))
    torch.testing.assert_close(gates.get_gate_values(), torch.tensor([0.75]))


@pytest.mark.parametrize(
    ("reduction", "expected"),
    [
        ("sum", torch.tensor(2.0 * 2.95022132)),
        ("mean", torch.tensor(2.0 * 0.73755533)),
        ("none", 2.0 * CONCRETE_PROBS),
    ],
)
def test_concrete_reg_reductions(reduction, expected):
    _, reg = _concrete(reg_weight=2.0, reg_reduction=reduction)(X)
    torch.testing.assert_close(reg, expected)


def test_eval_output_is_the_same_for_every_example_and_call():
    gates = _concrete()
    first, _ = gates(torch.ones(5, 4))
    second, _ = gates(torch.ones(5, 4))
    torch.testing.assert_close(first, second)
    torch.testing.assert_close(first, first[:1].expand(5, 4))


def test_gate_values_are_detached_copies():
    gates = _gaussian()
    values = gates.get_gate_values(clamp=False)
    values.add_(1.0)
    assert not values.requires_grad
    assert not gates.get_gate_active_probs().requires_grad
    torch.testing.assert_close(gates.mu.detach(), MU)


def test_from_pretrained_alias_and_defaults():
    gates = GaussianStochasticGates._from_pretrained(MU)
    assert gates.n_gates == 4 and gates.std == 0.5 and gates.reg_reduction == "sum"
    torch.testing.assert_close(gates.mu.detach(), MU)
    concrete = BinaryConcreteStochasticGates._from_pretrained(log_alpha_param=LOG_ALPHA)
    assert (concrete.temperature, concrete.lower_bound, concrete.upper_bound) == (2 / 3, -0.1, 1.1)
    assert concrete.eps == 1e-8
    torch.testing.assert_close(concrete.log_alpha_param.detach(), LOG_ALPHA)


def test_state_dict_holds_parameter_and_mask():
    mask = torch.tensor([0, 0, 1])
    gates = GaussianStochasticGates(2, mask=mask)
    state = gates.state_dict()
    assert set(state) == {"mu", "mask"}
    torch.testing.assert_close(state["mask"], mask)
    fresh = GaussianStochasticGates(2, mask=torch.tensor([1, 0, 0]))
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.mu, gates.mu)
    torch.testing.assert_close(fresh.mask, mask)
    assert set(BinaryConcreteStochasticGates(3).state_dict()) == {"log_alpha_param"}
