"""The RNG contract: init draws in the constructor, one (batch, n_gates) noise draw per forward."""

import torch

from hatcl.gates import BinaryConcreteStochasticGates, GaussianStochasticGates


def test_gaussian_init_draws_n_normals():
    torch.manual_seed(3)
    gates = GaussianStochasticGates(7)
    after_init = torch.rand(1)
    torch.manual_seed(3)
    expected = torch.normal(0.5, 0.01, size=(7,))
    torch.testing.assert_close(gates.mu.detach(), expected, rtol=0, atol=0)
    torch.testing.assert_close(after_init, torch.rand(1), rtol=0, atol=0)


def test_concrete_init_draws_n_normals():
    torch.manual_seed(4)
    gates = BinaryConcreteStochasticGates(5)
    torch.manual_seed(4)
    torch.testing.assert_close(
        gates.log_alpha_param.detach(), torch.normal(0.0, 0.01, size=(5,)), rtol=0, atol=0
    )


def test_gaussian_training_forward_replayed_by_hand():
    x = torch.randn(3, 4)
    torch.manual_seed(11)
    gates = GaussianStochasticGates(4, std=0.3)
    first, _ = gates(x)
    second, _ = gates(x)
    torch.manual_seed(11)
    mu = torch.normal(0.5, 0.01, size=(4,))
    noise_1 = torch.normal(0.0, 0.3, size=(3, 4))
    noise_2 = torch.normal(0.0, 0.3, size=(3, 4))
    torch.testing.assert_close(first, x * (mu + noise_1).clamp(0, 1))
    torch.testing.assert_close(second, x * (mu + noise_2).clamp(0, 1))
    assert not torch.equal(first, second)


def test_concrete_training_forward_replayed_by_hand():
    x = torch.randn(6, 3)
    torch.manual_seed(12)
    gates = BinaryConcreteStochasticGates(3, temperature=0.5)
    gated, _ = gates(x)
    torch.manual_seed(12)
    log_alpha = torch.normal(0.0, 0.01, size=(3,))
    u = torch.empty(6, 3).uniform_(1e-8, 1 - 1e-8)
    s = 1.0 / (1.0 + torch.exp(-(torch.log(u) - torch.log1p(-u) + log_alpha) / 0.5))
    expected = x * (s * 1.2 - 0.1).clamp(0, 1)
    torch.testing.assert_close(gated, expected)


def test_one_batch_by_gates_draw_with_grouping_mask():
    x = torch.randn(2, 3, 4, 4)
    torch.manual_seed(5)
    gates = GaussianStochasticGates(3, mask=torch.arange(3).reshape(3, 1, 1))
    gated, _ = gates(x)
    next_after_forward = torch.rand(1)
    torch.manual_seed(5)
    mu = torch.normal(0.5, 0.01, size=(3,))
    z = (mu + torch.normal(0.0, 0.5, size=(2, 3))).clamp(0, 1)
    torch.testing.assert_close(gated, x * z[:, :, None, None])
    torch.testing.assert_close(next_after_forward, torch.rand(1), rtol=0, atol=0)


def test_eval_forward_draws_nothing():
    for gate_class in (GaussianStochasticGates, BinaryConcreteStochasticGates):
        gates = gate_class(4).eval()
        torch.manual_seed(9)
        gates(torch.randn(2, 4))
        after = torch.rand(1)
        torch.manual_seed(9)
        torch.randn(2, 4)
        torch.testing.assert_close(after, torch.rand(1), rtol=0, atol=0)


def test_from_pretrained_still_draws_the_init():
    torch.manual_seed(2)
    GaussianStochasticGates.from_pretrained(torch.zeros(6))
    after = torch.rand(1)
    torch.manual_seed(2)
    torch.empty(6).normal_()
    torch.testing.assert_close(after, torch.rand(1), rtol=0, atol=0)
