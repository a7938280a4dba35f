"""min_max_normalise_each: every tensor normalised over its own entries, as the formula says."""

import torch
from torch.testing import assert_close

from hatcl.functional.reductions import min_max_normalise_each


def test_each_tensor_by_its_own_min_and_max():
    xs = [torch.tensor([1.0, 3.0, 2.0]), torch.tensor([[5.0, -1.0], [0.0, 2.0]])]
    out = min_max_normalise_each(xs, eps=0.0)
    assert_close(out[0], torch.tensor([0.0, 1.0, 0.5]))
    assert_close(out[1], torch.tensor([[1.0, 0.0], [1 / 6, 0.5]]))
    assert_close(xs[0], torch.tensor([1.0, 3.0, 2.0]))  # inputs untouched


def test_bitwise_equal_to_the_formula_and_constant_tensor():
    generator = torch.Generator().manual_seed(0)
    xs = [torch.rand(n, generator=generator) for n in (7, 100, 1)]
    for x, y in zip(xs, min_max_normalise_each(xs)):
        expected = (x - x.min()) / (x.max() - x.min() + 1e-8)
        assert torch.equal(y, expected)
    assert min_max_normalise_each([]) == []
