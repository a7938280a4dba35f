import math

import torch
from torch.testing import assert_close

from hatcl.functional.hat_gate import binary_mask, hat_gate


def test_hat_gate_values():
    e = torch.tensor([0.0, math.log(3.0), -math.log(3.0)])
    assert_close(hat_gate(e, 1.0), torch.tensor([0.5, 0.75, 0.25]))
    assert_close(hat_gate(e / 2, 2.0), torch.tensor([0.5, 0.75, 0.25]))


def test_hat_gate_is_differentiable():
    e = torch.tensor([0.0], requires_grad=True)
    hat_gate(e, 4.0).sum().backward()
    # d/de sigmoid(4e) at 0 = 4 * 0.25
    assert_close(e.grad, torch.tensor([1.0]))


def test_binary_mask_values_and_dtype():
    e = torch.tensor([-1.0, 0.0, 2.0, 1e-9], dtype=torch.float64, requires_grad=True)
    m = binary_mask(e)
    assert m.dtype == torch.float64
    assert not m.requires_grad
    assert_close(m, torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64))


def test_binary_mask_integer_input_is_float32():
    m = binary_mask(torch.tensor([-2, 0, 3]))
    assert m.dtype == torch.float32
    assert_close(m, torch.tensor([0.0, 0.0, 1.0]))


def test_binary_mask_matches_gate_threshold():
    e = torch.linspace(-3, 3, 13)
    assert_close(binary_mask(e), (hat_gate(e, 7.0) > 0.5).float())
