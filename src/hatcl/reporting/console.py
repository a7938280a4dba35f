"""Human-readable console output: per-task progress lines and the final summary table."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table


def task_line(console: Console, *, task_id: int, num_tasks: int, row: Sequence[float]) -> None:
    """One line after each task: its accuracy on every seen task and their mean."""
    accuracies = " ".join(f"{a:.3f}" for a in row)
    line = f"test accuracy on tasks 1..{task_id}: {accuracies}  (AA {sum(row) / len(row):.4f})"
    console.print(f"[bold]task {task_id}/{num_tasks}[/bold] {line}")
    logging.getLogger("hatcl").info("task %d/%d %s", task_id, num_tasks, line)


def summary_table(
    console: Console, *, title: str, metrics: Mapping[str, Any], run_dir: str
) -> None:
    """The accuracy matrix and the headline metrics (TAg and TAw without a task id at test)."""
    matrix = metrics["accuracy_matrix"]
    if "accuracy_matrix_task_aware" in metrics:
        title = f"{title}: task-agnostic accuracy (no task id at test)"
    table = Table(title=title, show_lines=False)
    table.add_column("after task", justify="right")
    for tau in range(1, len(matrix) + 1):
        table.add_column(f"T{tau}", justify="right")
    for t, row in enumerate(matrix, start=1):
        table.add_row(str(t), *(f"{a:.3f}" for a in row), *([""] * (len(matrix) - len(row))))
    console.print(table)
    for key, label in (
        ("average_accuracy", "AA"),
        ("bwt", "BWT"),
        ("forgetting", "forgetting"),
        ("fwt", "FWT"),
        ("average_accuracy_task_aware", "AA TAw"),
        ("bwt_task_aware", "BWT TAw"),
        ("forgetting_task_aware", "forget TAw"),
        ("final_capacity", "capacity"),
    ):
        if key in metrics:
            value = metrics[key]
            console.print(f"  {label:<11}{'n/a' if value is None else f'{value:.4f}'}")
    console.print(f"  results in {run_dir}")
