"""Gradient flow: task gradients only inside (0, 1); every reduction back-propagates."""

import pytest
import torch

from hatcl.gates import BinaryConcreteStochasticGates, GaussianStochasticGates


def test_eval_task_gradient_only_inside_unit_interval():
    gates = GaussianStochasticGates.from_pretrained(
        torch.tensor([-0.3, 0.4, 1.3, 0.9]), reg_weight=0.0
    ).eval()
    x = torch.tensor([[2.0, 3.0, 5.0, 7.0], [1.0, 1.0, 1.0, 1.0]])
    gated, reg = gates(x)
    (gated.sum() + reg).backward()
    # d/dmu_j sum_b x_bj * mu_j = sum_b x_bj where 0 < mu_j < 1, else 0
    torch.testing.assert_close(gates.mu.grad, torch.tensor([0.0, 4.0, 0.0, 8.0]))


def test_training_task_gradient_follows_sampled_values():
    x = torch.randn(8, 5)
    torch.manual_seed(7)
    gates = GaussianStochasticGates.from_pretrained(
        torch.tensor([-0.4, 0.1, 0.5, 0.9, 1.4]), reg_weight=0.0, std=0.5
    )
    gated, _ = gates(x)
    gated.sum().backward()
    torch.manual_seed(7)
    torch.empty(5).normal_()  # the constructor's init draw
    z = gates.mu.detach() + torch.normal(0.0, 0.5, size=(8, 5))
    inside = (z > 0) & (z < 1)
    torch.testing.assert_close(gates.mu.grad, (x * inside).sum(dim=0))
    assert inside.any() and (~inside).any()


def test_grouped_gate_gradient_sums_over_its_elements():
    mask = torch.tensor([0, 0, 1, 1, 1, 2])
    gates = BinaryConcreteStochasticGates.from_pretrained(
        torch.tensor([0.0, 0.5, 6.0]), mask=mask, reg_weight=0.0
    ).eval()
    x = torch.arange(1.0, 7.0).unsqueeze(0)
    gated, _ = gates(x)
    gated.sum().backward()
    s = torch.sigmoid(torch.tensor([0.0, 0.5]))
    ds = 1.2 * s * (1 - s)  # d stretch(sigmoid(a)) / da
    # gate 2 is clamped at 1 (sigmoid(6) * 1.2 - 0.1 > 1): no task gradient
    expected = torch.tensor([3.0 * ds[0], 12.0 * ds[1], 0.0])
    torch.testing.assert_close(gates.log_alpha_param.grad, expected)


@pytest.mark.parametrize(("reduction", "scale"), [("sum", 1.0), ("mean", 0.25), ("none", 1.0)])
def test_gaussian_reg_backpropagates(reduction, scale):
    mu = torch.tensor([-0.2, 0.3, 0.8, 1.4])
    gates = GaussianStochasticGates.from_pretrained(mu, reg_weight=0.5, reg_reduction=reduction)
    _, reg = gates(torch.zeros(2, 4))
    reg.sum().backward()
    # d Phi(mu / 0.5) / dmu = pdf(mu / 0.5) / 0.5
    density = torch.tensor([0.73654028, 0.66644921, 0.22184167, 0.01583090])
    torch.testing.assert_close(gates.mu.grad, 0.5 * scale * density)


@pytest.mark.parametrize(("reduction", "scale"), [("sum", 1.0), ("mean", 1 / 3), ("none", 1.0)])
def test_concrete_reg_backpropagates(reduction, scale):
    log_alpha = torch.tensor([-3.0, 0.0, 1.0])
    gates = BinaryConcreteStochasticGates.from_pretrained(
        log_alpha, reg_weight=2.0, reg_reduction=reduction
    )
    _, reg = gates(torch.zeros(2, 3))
    reg.sum().backward()
    p = torch.tensor([0.19759355, 0.83182218, 0.93077122])
    torch.testing.assert_close(gates.log_alpha_param.grad, 2.0 * scale * p * (1 - p))


def test_reg_none_can_be_reused_in_two_losses():
    gates = BinaryConcreteStochasticGates(3, reg_reduction="none")
    _, reg = gates(torch.randn(2, 3))
    (reg.sum() + reg.square().sum()).backward()
    assert gates.log_alpha_param.grad.abs().min() > 0
