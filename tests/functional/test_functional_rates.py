import pytest
import torch
from torch.testing import assert_close

from hatcl.functional.rates import (
    adahat_rate,
    adahat_reg_scale,
    fg_adahat_rate,
    fg_adahat_rate_scaled,
    hat_const_1_rate,
    hat_const_alpha_rate,
    hat_random_rate,
    hat_rate,
    linear_sparsity_reg_factor,
    sparsity_reg_factor,
    summative_mask_sparsity_reg_factor,
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
    assert_close(adahat_rate(importance, r=1.0), torch.tensor([1.0, 0.5, 0.25]))
    r = adahat_reg_scale(alpha=0.3, epsilon=0.1, network_sparsity=0.5)
    assert r == pytest.approx(0.5)
    r_t = adahat_reg_scale(alpha=0.3, epsilon=0.1, network_sparsity=torch.tensor(0.2))
    assert_close(r_t, torch.tensor(1.0))
    assert_close(adahat_rate(importance, r=r_t), torch.tensor([1.0, 0.5, 0.25]))


def test_fg_adahat_rate():
    importance = torch.tensor([0.0, 1.0, 3.0])
    assert_close(
        fg_adahat_rate(importance, alpha=2.0, scheduler_factor=2.0),
        torch.tensor([1.0, 0.5, 0.25]),
    )
    c = torch.tensor([1.0, 2.0, 4.0])
    # 1 / (c * I + 1) = [1, 1/3, 1/13]
    assert_close(
        fg_adahat_rate(importance, alpha=1.0, scheduler_factor=c),
        torch.tensor([1.0, 1.0 / 3.0, 1.0 / 13.0]),
    )


def test_scheduler_factors():
    assert linear_sparsity_reg_factor(
        task_id=3, network_sparsity=0.4, base_linear=10.0, base_mask_sparsity_reg=0.1
    ) == pytest.approx(6.5)
    assert sparsity_reg_factor(network_sparsity=0.4, base_mask_sparsity_reg=0.1) == pytest.approx(
        0.5
    )
    got = summative_mask_sparsity_reg_factor(
        summative_param=torch.tensor([[0.0, 2.0]]),
        network_sparsity=torch.tensor(0.4),
        base_linear=5.0,
        base_mask_sparsity_reg=0.1,
    )
    assert_close(got, torch.tensor([[2.5, 3.5]]))


def test_scaled_fg_adahat_rate_equals_the_direct_formula():
    importance = torch.tensor([[0.0, 2.0], [5.0, 1e6]])
    alpha, factor = 1.5e-7, torch.tensor(3.2)
    direct = fg_adahat_rate(importance, alpha=alpha, scheduler_factor=factor)
    scaled = fg_adahat_rate_scaled(importance / alpha, scheduler_factor=factor)
    torch.testing.assert_close(scaled, direct, rtol=1e-6, atol=0)
    assert scaled[0, 0] == 1.0  # no importance: the full gradient passes
