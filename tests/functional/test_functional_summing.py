import math
from functools import partial

import pytest
import torch
from torch.testing import assert_close

from hatcl.functional.summing import (
    add_all,
    add_average,
    add_latest,
    cubic_decrease_weight,
    exponential_decrease_weight,
    factorial_decrease_weight,
    linear_decrease_weight,
    log_decrease_weight,
    quadratic_decrease_weight,
    weighted_task_sum,
)

# weights of tasks tau = 1..t for t = 1..4 (k = t - tau, the latest task last)
TABLES = {
    "linear_step_0.5": (
        partial(linear_decrease_weight, step=0.5),
        [[1.0], [1.5, 1.0], [2.0, 1.5, 1.0], [2.5, 2.0, 1.5, 1.0]],
    ),
    "quadratic": (
        quadratic_decrease_weight,
        [[1.0], [4.0, 1.0], [9.0, 4.0, 1.0], [16.0, 9.0, 4.0, 1.0]],
    ),
    "cubic": (cubic_decrease_weight, [[1.0], [8.0, 1.0], [27.0, 8.0, 1.0], [64.0, 27.0, 8.0, 1.0]]),
    "exponential_rate_2": (
        partial(exponential_decrease_weight, rate=2.0),
        [[2.0], [4.0, 2.0], [8.0, 4.0, 2.0], [16.0, 8.0, 4.0, 2.0]],
    ),
    "log_base_2": (
        partial(log_decrease_weight, base=2.0),
        [[1.0], [2.0, 1.0], [2.584962500721156, 2.0, 1.0], [3.0, 2.584962500721156, 2.0, 1.0]],
    ),
    "factorial": (
        factorial_decrease_weight,
        [[1.0], [2.0, 1.0], [6.0, 2.0, 1.0], [24.0, 6.0, 2.0, 1.0]],
    ),
}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_weight_tables(name):
    weight, table = TABLES[name]
    for t, expected in enumerate(table, start=1):
        got = [weight(t - tau) for tau in range(1, t + 1)]
        assert got == pytest.approx(expected, rel=1e-12), (name, t)
        assert all(math.isfinite(w) for w in got)


def test_weighted_task_sum_every_task_contributes():
    imps = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0])]
    # 9 * I1 + 4 * I2 + 1 * I3
    assert_close(weighted_task_sum(imps, quadratic_decrease_weight), torch.tensor([10.0, 5.0]))
    # log base 3: w(2) = 2, w(1) = log_3(2) + 1, w(0) = 1
    w1 = math.log(2.0) / math.log(3.0) + 1.0
    got = weighted_task_sum(imps, partial(log_decrease_weight, base=3.0))
    assert_close(got, torch.tensor([3.0, w1 + 1.0]))
    assert_close(weighted_task_sum(imps[:1], factorial_decrease_weight), torch.tensor([1.0, 0.0]))


def test_additive_strategies():
    summative = torch.tensor([1.0, 1.0])
    imps = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0])]
    assert_close(add_latest(summative, imps[-1]), torch.tensor([2.0, 2.0]))
    assert_close(add_all(summative, imps), torch.tensor([3.0, 3.0]))
    assert_close(add_average(summative, imps), torch.tensor([1.0 + 2.0 / 3.0] * 2))


def test_add_all_weights_each_task_t_minus_tau_plus_one():
    imps = [
        torch.tensor([1.0, 0.0, 0.0]),
        torch.tensor([0.0, 1.0, 0.0]),
        torch.tensor([0.0, 0.0, 1.0]),
    ]
    summative = torch.zeros(3)
    for t in range(1, 4):
        summative = add_all(summative, imps[:t])
    assert_close(summative, torch.tensor([3.0, 2.0, 1.0]))


def test_invalid_arguments():
    with pytest.raises(ValueError, match="linear_step"):
        linear_decrease_weight(1, step=0.0)
    with pytest.raises(ValueError, match="exponential_rate"):
        exponential_decrease_weight(1, rate=1.0)
    with pytest.raises(ValueError, match="log_base"):
        log_decrease_weight(1, base=1.0)
    with pytest.raises(ValueError, match="k"):
        quadratic_decrease_weight(-1)
    with pytest.raises(ValueError, match="empty"):
        weighted_task_sum([], quadratic_decrease_weight)
    with pytest.raises(ValueError, match="empty"):
        add_all(torch.zeros(1), [])
    with pytest.raises(ValueError, match="empty"):
        add_average(torch.zeros(1), [])
