import pytest

from hatcl.functional.annealing import annealed_scale


def test_first_batch_is_inverse_s_max():
    assert annealed_scale(batch_index=0, num_batches=5, s_max=400.0) == pytest.approx(0.0025)


def test_last_batch_is_exactly_s_max():
    assert annealed_scale(batch_index=4, num_batches=5, s_max=400.0) == 400.0
    assert annealed_scale(batch_index=468, num_batches=469, s_max=400.0) == 400.0


def test_middle_batch_is_linear():
    # 0.0025 + (400 - 0.0025) * 2 / 4
    assert annealed_scale(batch_index=2, num_batches=5, s_max=400.0) == pytest.approx(200.00125)
    # 1/4 + (4 - 1/4) * 1 / 3 = 0.25 + 1.25
    assert annealed_scale(batch_index=1, num_batches=4, s_max=4.0) == pytest.approx(1.5)


def test_single_batch_uses_s_max():
    assert annealed_scale(batch_index=0, num_batches=1, s_max=400.0) == 400.0


def test_schedule_is_increasing_and_positive():
    values = [annealed_scale(batch_index=b, num_batches=7, s_max=10.0) for b in range(7)]
    assert all(v > 0 for v in values)
    assert all(a < b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"batch_index": 5, "num_batches": 5, "s_max": 4.0}, "batch_index"),
        ({"batch_index": -1, "num_batches": 5, "s_max": 4.0}, "batch_index"),
        ({"batch_index": 0, "num_batches": 0, "s_max": 4.0}, "num_batches"),
        ({"batch_index": 0, "num_batches": 3, "s_max": 0.0}, "s_max"),
        ({"batch_index": 0, "num_batches": 3, "s_max": -2.0}, "s_max"),
    ],
)
def test_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        annealed_scale(**kwargs)
