import pytest
import torch
from torch.testing import assert_close

from hatcl.functional.sparsity import (
    SPARSITY_MIN_DENOMINATOR,
    SparsityResult,
    cross_sparsity,
    original_sparsity,
)


def _leaf(values):
    return torch.tensor(values, requires_grad=True)


def _two_layers():
    # layer A: 12 units, nothing used before, m = 0.5 -> A = 12, O = 6, P = 0
    # layer B: 20 units, first 5 used before, m = 0.25 -> A = 15, O = 3.75, P = 5, Q = 1.25
    masks = [_leaf([0.5] * 12), _leaf([0.25] * 20)]
    cumulative = [torch.zeros(12), torch.cat([torch.ones(5), torch.zeros(15)])]
    return masks, cumulative


def test_constant_value():
    assert SPARSITY_MIN_DENOMINATOR == 10


def test_original_values_and_gradient():
    masks, cumulative = _two_layers()
    result = original_sparsity(masks, cumulative)
    assert isinstance(result, SparsityResult)
    assert result.reg.dim() == 0
    assert_close(result.reg, torch.tensor(9.75 / 27.0))
    assert len(result.per_layer) == 2
    assert_close(result.per_layer[0], torch.tensor(0.5))
    assert_close(result.per_layer[1], torch.tensor(0.25))
    assert all(r.dim() == 0 and not r.requires_grad for r in result.per_layer)
    result.reg.backward()
    assert_close(masks[0].grad, torch.full((12,), 1.0 / 27.0))
    assert_close(masks[1].grad, torch.cat([torch.zeros(5), torch.full((15,), 1.0 / 27.0)]))


def test_original_guard_per_layer():
    # layer C: 11 units, 9 used -> A = 2 <= 10, its R is 0, but it still counts in the totals
    masks = [_leaf([0.5] * 12), _leaf([1.0] * 11)]
    cumulative = [torch.zeros(12), torch.cat([torch.ones(9), torch.zeros(2)])]
    result = original_sparsity(masks, cumulative)
    assert_close(result.per_layer[0], torch.tensor(0.5))
    assert_close(result.per_layer[1], torch.tensor(0.0))
    assert_close(result.reg, torch.tensor(8.0 / 14.0))


@pytest.mark.parametrize("fn", [original_sparsity, cross_sparsity])
def test_guard_on_total_gives_zero_dim_zero_with_working_backward(fn):
    # 10 free units in total (the boundary): guarded to 0
    masks = [_leaf([0.7] * 10), _leaf([0.3] * 4)]
    cumulative = [torch.zeros(10), torch.ones(4)]
    result = fn(masks, cumulative)
    assert result.reg.dim() == 0
    # original: A = 10 is guarded; cross: A = 10 and P = 4 guarded, reuse term 0: (0 + 0) / 2
    assert_close(result.reg, torch.tensor(0.0))
    assert result.reg.requires_grad
    result.reg.backward()
    for mask in masks:
        assert mask.grad is not None
        assert torch.isfinite(mask.grad).all()
        assert_close(mask.grad, torch.zeros_like(mask))


def test_guard_boundary_eleven_units_is_regularised():
    masks = [_leaf([0.5] * 11)]
    result = original_sparsity(masks, [torch.zeros(11)])
    assert_close(result.reg, torch.tensor(0.5))


def test_cross_values_and_gradient():
    # layer A: 12 units, M = 0, m = 0.5 -> A = 12, O = 6, P = 0, Q = 0
    # layer D: 30 units, first 12 used; m = 0.5 on used, 0.2 on free
    #   -> A = 18, O = 3.6, P = 12, Q = 6
    masks = [_leaf([0.5] * 12), _leaf([0.5] * 12 + [0.2] * 18)]
    cumulative = [torch.zeros(12), torch.cat([torch.ones(12), torch.zeros(18)])]
    result = cross_sparsity(masks, cumulative)
    assert result.reg.dim() == 0
    # (9.6 / 30 + (1 - 6 / 12)) / 2 = (0.32 + 0.5) / 2
    assert_close(result.reg, torch.tensor(0.41))
    # A: P = 0 <= 10, reuse term 0 -> (0.5 + 0) / 2; D: (0.2 + 0.5) / 2
    assert_close(result.per_layer[0], torch.tensor(0.25))
    assert_close(result.per_layer[1], torch.tensor(0.35))
    assert all(r.dim() == 0 and not r.requires_grad for r in result.per_layer)
    result.reg.backward()
    assert_close(masks[0].grad, torch.full((12,), 1.0 / 60.0))
    expected = torch.cat([torch.full((12,), -1.0 / 24.0), torch.full((18,), 1.0 / 60.0)])
    assert_close(masks[1].grad, expected)


def test_cross_reuse_term_is_zero_with_ten_or_fewer_used_units():
    masks, cumulative = _two_layers()  # total P = 5 <= 10: reuse term 0, as the reference
    result = cross_sparsity(masks, cumulative)
    assert_close(result.reg, torch.tensor((9.75 / 27.0 + 0.0) / 2))
    # A: O/A = 0.5, P = 0; B: O/A = 0.25, P = 5
    assert_close(result.per_layer[0], torch.tensor(0.25))
    assert_close(result.per_layer[1], torch.tensor(0.125))
    result.reg.backward()
    # the reuse term is constant: only the free units get the gradient 1 / (2 * 27)
    assert_close(masks[1].grad, torch.cat([torch.zeros(5), torch.full((15,), 1.0 / 54.0)]))


def test_cross_reuse_guard_boundary_per_layer():
    # 10 used units -> reuse term 0; 11 used units -> 1 - Q / P
    # layer E: 20 units, first 10 used, m = 0.4 everywhere: A = 10 (guarded), P = 10 (guarded)
    # layer F: 22 units, first 11 used, m = 0.4 on used, 0.1 on free: A = 11, O = 1.1,
    #   P = 11, Q = 4.4 -> R = (0.1 + (1 - 0.4)) / 2 = 0.35
    masks = [_leaf([0.4] * 20), _leaf([0.4] * 11 + [0.1] * 11)]
    cumulative = [
        torch.cat([torch.ones(10), torch.zeros(10)]),
        torch.cat([torch.ones(11), torch.zeros(11)]),
    ]
    result = cross_sparsity(masks, cumulative)
    assert_close(result.per_layer[0], torch.tensor(0.0))
    assert_close(result.per_layer[1], torch.tensor(0.35))
    # totals: O = 4 + 1.1 over A = 21; Q = 4 + 4.4 over P = 21
    assert_close(result.reg, torch.tensor((5.1 / 21 + (1 - 8.4 / 21)) / 2))


@pytest.mark.parametrize("fn", [original_sparsity, cross_sparsity])
def test_input_validation(fn):
    with pytest.raises(ValueError, match="empty"):
        fn([], [])
    with pytest.raises(ValueError, match="2 layers.*1 layers"):
        fn([torch.zeros(3), torch.zeros(3)], [torch.zeros(3)])
    with pytest.raises(ValueError, match="shape"):
        fn([torch.zeros(3)], [torch.zeros(4)])
