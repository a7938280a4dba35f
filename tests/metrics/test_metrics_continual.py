"""CL metrics on hand-made accuracy matrices (T = 1, 2, 3)."""

import pytest

from hatcl.metrics.continual import (
    average_accuracy,
    average_accuracy_curve,
    backward_transfer,
    forgetting,
    forward_transfer,
    summary,
)

MATRIX_3 = [[0.9], [0.8, 0.95], [0.7, 0.85, 0.99]]


def test_single_task_has_aa_and_no_transfer_metrics():
    assert average_accuracy([[0.75]]) == 0.75
    assert backward_transfer([[0.75]]) is None
    assert forgetting([[0.75]]) is None
    assert forward_transfer([[0.75]], [0.8]) is None


def test_two_tasks():
    matrix = [[0.9], [0.6, 0.8]]
    assert average_accuracy(matrix) == pytest.approx(0.7)
    assert backward_transfer(matrix) == pytest.approx(-0.3)
    assert forgetting(matrix) == pytest.approx(0.3)
    assert forward_transfer(matrix, [0.9, 0.85]) == pytest.approx(-0.05)


def test_three_tasks_by_hand():
    assert average_accuracy(MATRIX_3) == pytest.approx((0.7 + 0.85 + 0.99) / 3)
    assert average_accuracy_curve(MATRIX_3) == pytest.approx([0.9, 0.875, 2.54 / 3])
    # BWT = ((0.7 - 0.9) + (0.85 - 0.95)) / 2
    assert backward_transfer(MATRIX_3) == pytest.approx(-0.15)
    # forgetting: task 1 max(0.9, 0.8) - 0.7 = 0.2; task 2 max(0.95) - 0.85 = 0.1
    assert forgetting(MATRIX_3) == pytest.approx(0.15)
    # FWT = ((0.95 - 0.9) + (0.99 - 1.0)) / 2
    assert forward_transfer(MATRIX_3, [0.9, 0.9, 1.0]) == pytest.approx(0.02)


def test_forgetting_uses_the_best_earlier_accuracy_not_the_first():
    matrix = [[0.5], [0.9, 0.8], [0.6, 0.8, 0.7]]
    # task 1: max(0.5, 0.9) - 0.6 = 0.3; task 2: 0.8 - 0.8 = 0
    assert forgetting(matrix) == pytest.approx(0.15)
    assert backward_transfer(matrix) == pytest.approx(0.05)


def test_malformed_matrix_and_short_reference_are_rejected():
    with pytest.raises(ValueError, match="row 2 has 1 entries"):
        average_accuracy([[0.5], [0.5]])
    with pytest.raises(ValueError, match="2 accuracies; 3 are needed"):
        forward_transfer(MATRIX_3, [0.9, 0.9])


def test_summary_keys():
    result = summary(MATRIX_3)
    assert result["accuracy_matrix"] == [[0.9], [0.8, 0.95], [0.7, 0.85, 0.99]]
    assert result["bwt"] == pytest.approx(-0.15)
    assert summary([[1.0]])["forgetting"] is None
