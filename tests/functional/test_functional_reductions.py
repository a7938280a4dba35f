import pytest
import torch
from torch.testing import assert_close

from hatcl.functional.reductions import batch_abs_mean, fan_in, fan_out, min_max_normalise

X = torch.tensor([[1.0, -2.0], [3.0, 4.0]])


def test_fan_in_and_fan_out_2d():
    assert_close(fan_in(X.abs()), torch.tensor([3.0, 7.0]))
    assert_close(fan_out(X), torch.tensor([4.0, 2.0]))


def test_fan_in_and_fan_out_conv():
    w = torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2)
    # out 0 holds 0..11 (sum 66), out 1 holds 12..23 (sum 210)
    assert_close(fan_in(w), torch.tensor([66.0, 210.0]))
    # in j holds 4j..4j+3 and 12+4j..12+4j+3: sum = 32j + 60
    assert_close(fan_out(w), torch.tensor([60.0, 92.0, 124.0]))


def test_fan_in_1d_is_identity_copy():
    b = torch.tensor([1.0, 2.0])
    out = fan_in(b)
    assert_close(out, b)
    out[0] = 5.0
    assert b[0] == 1.0


def test_batch_abs_mean():
    assert_close(batch_abs_mean(X), torch.tensor([2.0, 3.0]))
    h = torch.tensor([[[[1.0, -3.0]], [[2.0, 2.0]]], [[[-5.0, 7.0]], [[0.0, -4.0]]]])  # (2,2,1,2)
    # unit 0: |1|,|3|,|5|,|7| -> 4; unit 1: 2,2,0,4 -> 2
    assert_close(batch_abs_mean(h), torch.tensor([4.0, 2.0]))


def test_min_max_normalise():
    got = min_max_normalise(torch.tensor([1.0, 3.0, 5.0]))
    assert_close(got, torch.tensor([0.0, 0.5, 1.0]))
    got64 = min_max_normalise(torch.tensor([1.0, 3.0, 5.0], dtype=torch.float64))
    assert got64[2].item() == 4.0 / (4.0 + 1e-8)
    assert_close(min_max_normalise(torch.full((3,), 2.0)), torch.zeros(3))
    assert_close(min_max_normalise(torch.tensor([0.0, 1.0]), eps=1.0), torch.tensor([0.0, 0.5]))


def test_dimension_errors():
    with pytest.raises(ValueError, match="fan_out"):
        fan_out(torch.zeros(3))
    with pytest.raises(ValueError, match="batch_abs_mean"):
        batch_abs_mean(torch.zeros(3))
    with pytest.raises(ValueError, match="fan_in"):
        fan_in(torch.tensor(1.0))
