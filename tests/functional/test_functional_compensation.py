import math

import pytest
import torch
from torch.testing import assert_close

from hatcl.functional.compensation import embedding_compensation_factor


def _naive(e: float, s: float, s_max: float, c: float) -> float:
    clamped = max(-c, min(c, s * e))
    return (s_max / s) * (math.cosh(clamped) + 1) / (math.cosh(e) + 1)


def test_factor_at_chosen_points():
    e = torch.tensor([0.5, -0.5, 0.0], dtype=torch.float64)
    got = embedding_compensation_factor(e, scale=2.0, s_max=4.0, clamp_threshold=50.0)
    # (4 / 2) * (cosh(1) + 1) / (cosh(0.5) + 1) = 2 * 2.5430806348 / 2.1276259652
    expected_half = 2.0 * (1.5430806348152437 + 1) / (1.1276259652063807 + 1)
    assert_close(got, torch.tensor([expected_half, expected_half, 2.0], dtype=torch.float64))
    assert got[0].item() == pytest.approx(2.390532, rel=1e-6)


def test_factor_matches_naive_formula_float32():
    values = [-3.0, -1.0, -0.1, 0.0, 0.2, 1.5, 4.0]
    e = torch.tensor(values)
    got = embedding_compensation_factor(e, scale=0.7, s_max=6.0, clamp_threshold=50.0)
    expected = torch.tensor([_naive(v, 0.7, 6.0, 50.0) for v in values])
    assert got.dtype == torch.float32
    assert_close(got, expected, rtol=1e-6, atol=0)


def test_clamp_is_applied():
    e = torch.tensor([2.0], dtype=torch.float64)
    got = embedding_compensation_factor(e, scale=40.0, s_max=4.0, clamp_threshold=50.0)
    # s * e = 80 is clamped to 50
    expected = 0.1 * (math.cosh(50.0) + 1) / (math.cosh(2.0) + 1)
    assert_close(got, torch.tensor([expected], dtype=torch.float64))


def test_huge_embedding_is_finite_and_correct():
    # cosh(200) overflows float32; the exact factor is ~ cosh(50) / cosh(200), i.e. ~ 0.
    e = torch.tensor([200.0, -200.0])
    got = embedding_compensation_factor(e, scale=1.0, s_max=400.0, clamp_threshold=50.0)
    assert torch.isfinite(got).all()
    assert_close(got, torch.zeros(2))
    # Without clamping and huge values (naive: inf / inf = nan), the ratio is exactly 1.
    e64 = torch.tensor([800.0], dtype=torch.float64)
    got64 = embedding_compensation_factor(e64, scale=1.0, s_max=3.0, clamp_threshold=1000.0)
    assert_close(got64, torch.tensor([3.0], dtype=torch.float64))


def test_factor_has_no_grad():
    e = torch.tensor([0.3], requires_grad=True)
    assert not embedding_compensation_factor(
        e, scale=1.0, s_max=2.0, clamp_threshold=50.0
    ).requires_grad


@pytest.mark.parametrize("name", ["scale", "s_max", "clamp_threshold"])
def test_invalid_arguments(name):
    kwargs = {"scale": 1.0, "s_max": 2.0, "clamp_threshold": 50.0, name: 0.0}
    with pytest.raises(ValueError, match=name):
        embedding_compensation_factor(torch.zeros(2), **kwargs)


@pytest.mark.parametrize("clamp_threshold", [50.0, 800.0])  # direct float64 form / log form
def test_both_evaluations_match_the_naive_formula(clamp_threshold):
    values = [-30.0, -2.5, -0.01, 0.0, 0.3, 7.0, 900.0]
    e = torch.tensor(values, dtype=torch.float64)
    got = embedding_compensation_factor(e, scale=3.0, s_max=400.0, clamp_threshold=clamp_threshold)
    expected = []
    for v in values:
        try:
            expected.append(_naive(v, 3.0, 400.0, clamp_threshold))
        except OverflowError:  # cosh(x) + 1 = exp(x) / 2 to float64 precision for x > 40
            expected.append(400.0 / 3.0 * math.exp(min(clamp_threshold, 3.0 * v) - v))
    assert torch.isfinite(got).all()
    assert_close(got, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)
    assert_close(e, torch.tensor(values, dtype=torch.float64))  # the input is not modified
