"""The sparsity regularisers as affine maps of the concatenated masks (one product per step)."""

import pytest
import torch
from torch.testing import assert_close

from hatcl.functional.sparsity import (
    cross_sparsity,
    cross_sparsity_linear,
    original_sparsity,
    original_sparsity_linear,
)
from hatcl.masking.registries import SPARSITY_LINEAR_FORMS, SPARSITY_MODES


def test_original_linear_form_by_hand():
    # layer A: 12 free units; layer B: 20 units, 5 used -> A_A = 12, A_B = 15, A = 27
    cumulative = [torch.zeros(12), torch.cat([torch.ones(5), torch.zeros(15)])]
    form = original_sparsity_linear(cumulative)
    assert form.weights.shape == (3, 32) and form.offset.shape == (3,)
    expected_reg_row = torch.cat(
        [torch.full((12,), 1 / 27), torch.zeros(5), torch.full((15,), 1 / 27)]
    )
    assert_close(form.weights[0], expected_reg_row)
    assert_close(form.weights[1], torch.cat([torch.full((12,), 1 / 12), torch.zeros(20)]))
    assert_close(form.weights[2], torch.cat([torch.zeros(17), torch.full((15,), 1 / 15)]))
    assert_close(form.offset, torch.zeros(3))
    masks = torch.cat([torch.full((12,), 0.5), torch.full((20,), 0.25)])
    result = form.evaluate(masks)
    assert_close(result.reg, torch.tensor(9.75 / 27.0))  # O = 6 + 3.75
    assert_close(torch.stack(result.per_layer), torch.tensor([0.5, 0.25]))


def test_cross_linear_form_by_hand_guards():
    # layer A: nothing used (P = 0 <= 10: reuse term 0); layer B: 12 of 20 used (P = 12 > 10)
    cumulative = [torch.zeros(12), torch.cat([torch.ones(12), torch.zeros(8)])]
    form = cross_sparsity_linear(cumulative)
    # B alone: A_B = 8 <= 10 -> free ratio 0; reuse (1 - Q / 12) / 2 -> offset 1/2, -1/24 per used
    assert_close(form.offset, torch.tensor([0.5, 0.0, 0.5]))
    assert_close(
        form.weights[2], torch.cat([torch.zeros(12), torch.full((12,), -1 / 24), torch.zeros(8)])
    )
    masks = torch.cat([torch.full((12,), 0.5), torch.ones(12), torch.zeros(8)])
    result = form.evaluate(masks)
    # whole net: A = 20, O = 6; P = 12, Q = 12 -> (6/20 + 0) / 2
    assert_close(result.reg, torch.tensor(0.15))
    assert_close(torch.stack(result.per_layer), torch.tensor([0.25, 0.0]))


@pytest.mark.parametrize(
    ("direct", "linear"),
    [(original_sparsity, original_sparsity_linear), (cross_sparsity, cross_sparsity_linear)],
)
def test_linear_form_equals_the_regulariser_and_its_gradient(direct, linear):
    generator = torch.Generator().manual_seed(0)
    sizes = [30, 12, 5, 40]
    for _ in range(10):
        cumulative = [
            (torch.rand(n, generator=generator) < torch.rand(1, generator=generator)).float()
            for n in sizes
        ]
        masks = [torch.rand(n, generator=generator).requires_grad_() for n in sizes]
        expected = direct(masks, cumulative)
        flat = torch.cat([m.detach() for m in masks]).requires_grad_()
        result = linear(cumulative).evaluate(flat)
        assert_close(result.reg, expected.reg)
        assert_close(torch.stack(result.per_layer), torch.stack(expected.per_layer))
        expected.reg.backward()
        result.reg.backward()
        assert_close(flat.grad, torch.cat([m.grad for m in masks]))


def test_every_sparsity_mode_has_its_linear_form():
    assert SPARSITY_LINEAR_FORMS.names() == SPARSITY_MODES.names()


def test_empty_cumulative_is_refused():
    with pytest.raises(ValueError, match="at least one layer"):
        original_sparsity_linear([])
