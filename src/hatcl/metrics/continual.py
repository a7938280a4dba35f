"""Continual-learning metrics from the lower-triangular accuracy matrix a[t][tau].

``matrix[t - 1][tau - 1]`` is the test accuracy on task tau after training task t (tau <= t);
row t has t entries. Undefined metrics (e.g. BWT with one task) are ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence

AccuracyMatrix = Sequence[Sequence[float]]


def check_matrix(matrix: AccuracyMatrix) -> int:
    """Return the number of trained tasks T; ``ValueError`` unless row t has t entries."""
    for index, row in enumerate(matrix):
        if len(row) != index + 1:
            raise ValueError(
                f"accuracy matrix row {index + 1} has {len(row)} entries, not {index + 1}"
            )
    return len(matrix)


def average_accuracy(matrix: AccuracyMatrix, *, after_task: int | None = None) -> float | None:
    """AA_t = mean over tau <= t of a[t][tau] (t defaults to the last trained task)."""
    tasks = check_matrix(matrix)
    t = tasks if after_task is None else after_task
    if not 1 <= t <= tasks:
        return None
    row = matrix[t - 1]
    return sum(row) / len(row)


def average_accuracy_curve(matrix: AccuracyMatrix) -> list[float]:
    """AA_t for t = 1..T."""
    return [average_accuracy(matrix, after_task=t) for t in range(1, check_matrix(matrix) + 1)]


def backward_transfer(matrix: AccuracyMatrix) -> float | None:
    """BWT = 1/(T-1) sum_{tau<T} (a[T][tau] - a[tau][tau]); defined for T >= 2."""
    tasks = check_matrix(matrix)
    if tasks < 2:
        return None
    last = matrix[-1]
    return sum(last[tau] - matrix[tau][tau] for tau in range(tasks - 1)) / (tasks - 1)


def forgetting(matrix: AccuracyMatrix) -> float | None:
    """F = 1/(T-1) sum_{tau<T} (max_{t in tau..T-1} a[t][tau] - a[T][tau]) (Chaudhry et al.)."""
    tasks = check_matrix(matrix)
    if tasks < 2:
        return None
    last = matrix[-1]
    drops = [
        max(matrix[t][tau] for t in range(tau, tasks - 1)) - last[tau] for tau in range(tasks - 1)
    ]
    return sum(drops) / (tasks - 1)


def forward_transfer(matrix: AccuracyMatrix, reference: Sequence[float]) -> float | None:
    """FWT = 1/(T-1) sum_{tau=2..T} (a[tau][tau] - b[tau]) with b the single-task accuracies."""
    tasks = check_matrix(matrix)
    if tasks < 2:
        return None
    if len(reference) < tasks:
        raise ValueError(f"the reference has {len(reference)} accuracies; {tasks} are needed")
    return sum(matrix[tau][tau] - reference[tau] for tau in range(1, tasks)) / (tasks - 1)


def summary(matrix: AccuracyMatrix) -> dict[str, object]:
    """The metrics every run reports, JSON-ready."""
    return {
        "accuracy_matrix": [list(row) for row in matrix],
        "average_accuracy": average_accuracy(matrix),
        "average_accuracy_per_task": average_accuracy_curve(matrix),
        "bwt": backward_transfer(matrix),
        "forgetting": forgetting(matrix),
    }
