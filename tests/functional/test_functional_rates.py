import pytest
import torch
from torch.testing import assert_close

from hatcl.functional.rates import (
    adahat_scale,
    adjustment_rate,
    adjustment_rate_from_inverse,
    fg_adahat_step_factor,
    hat_const_1_rate,
    hat_const_alpha_rate,
    hat_random_rate,
    hat_rate,
    linear_task_factor,
    summative_mask_task_factor,
)

P = torch.tensor([[0.0, 1.0, 0.5], [1.0, 0.0, 0.25]])


def test_hat_rate():
    assert_close(hat_rate(P), torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, 0.75]]))


def test_hat_random_rate_uses_generator_and_fresh_draws():
    gen = torch.Generator().manual_seed(123)
    first = hat_random_rate(P, generator=gen)
    second = hat_random_rate(P, generator=gen)
    oracle_gen = torch.Generator().manual_seed(123)
    u1 = torch.rand(P.shape, generator=oracle_gen)
    u2 = torch.rand(P.shape, generator=oracle_gen)
    assert_close(first, u1 * P + (1 - P))
    assert_close(second, u2 * P + (1 - P))
    assert not torch.equal(first, second)
    assert first.shape == P.shape
    # unused parameters (P = 0) are free; fully used ones get exactly the uniform draw
    assert_close(first[P == 0], torch.ones(2))
    assert_close(first[P == 1], u1[P == 1])


def test_hat_const_alpha_rate():
    got = hat_const_alpha_rate(P, alpha=0.1)
    assert_close(got, torch.tensor([[1.0, 0.1, 0.55], [0.1, 1.0, 0.775]]))
    with pytest.raises(ValueError, match="alpha"):
        hat_const_alpha_rate(P)


def test_hat_const_1_rate():
    assert_close(hat_const_1_rate(P), torch.ones(2, 3))


def test_adahat_rate_and_scale():
    importance = torch.tensor([0.0, 1.0, 3.0])
    assert_close(adjustment_rate(importance, k=1.0), torch.tensor([1.0, 0.5, 0.25]))
    r = adahat_scale(alpha=0.3, epsilon=0.1, network_sparsity=0.5)
    assert r == pytest.approx(0.5)
    r_t = adahat_scale(alpha=0.3, epsilon=0.1, network_sparsity=torch.tensor(0.2))
    assert_close(r_t, torch.tensor(1.0))
    assert_close(adjustment_rate(importance, k=r_t), torch.tensor([1.0, 0.5, 0.25]))


def test_fg_adahat_rate():
    """alpha / (c I + alpha) is k / (I + k) with k = alpha / c."""
    importance = torch.tensor([0.0, 1.0, 3.0])
    assert_close(adjustment_rate(importance, k=2.0 / 2.0), torch.tensor([1.0, 0.5, 0.25]))
    c = torch.tensor([1.0, 2.0, 4.0])
    # 1 / (c * I + 1) = [1, 1/3, 1/13]
    assert_close(
        adjustment_rate(importance, k=1.0 / c), torch.tensor([1.0, 1.0 / 3.0, 1.0 / 13.0])
    )


def test_scheduler_factors():
    """c = task factor x step factor; the products of docs/spec.md §5 written out."""
    step = fg_adahat_step_factor(network_sparsity=0.4, base_mask_sparsity_reg=0.1)
    assert step == pytest.approx(0.5)
    assert linear_task_factor(task_id=3, base_linear=10.0) * step == pytest.approx(6.5)
    got = summative_mask_task_factor(summative_param=torch.tensor([[0.0, 2.0]]), base_linear=5.0)
    step_t = fg_adahat_step_factor(network_sparsity=torch.tensor(0.4), base_mask_sparsity_reg=0.1)
    assert_close(got * step_t, torch.tensor([[2.5, 3.5]]))


def test_scaled_fg_adahat_rate_equals_the_direct_formula():
    importance = torch.tensor([[0.0, 2.0], [5.0, 1e6]])
    alpha, factor = 1.5e-7, torch.tensor(3.2)
    direct = alpha / (factor * importance + alpha)  # docs/spec.md §5, written out
    scaled = adjustment_rate_from_inverse(importance / alpha, inverse_k=factor)
    torch.testing.assert_close(scaled, direct, rtol=1e-6, atol=0)
    assert scaled[0, 0] == 1.0  # no importance: the full gradient passes
