"""Figures of a run folder (PNG, matplotlib's Agg canvas; no pyplot, no global backend change).

Everything is read back from the run folder's files, so the figures of an old run can be redrawn
with :func:`write_run_figures`.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

FIGURES_DIR = "figures"


#: Largest number of tasks whose accuracy heat map is annotated cell by cell.
ANNOTATE_UP_TO = 20


def new_figure(width: float = 5.0, height: float = 4.0):
    """A matplotlib Figure drawn on an Agg canvas (works without a display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure, path: Path) -> Path:  # noqa: ANN001
    """Write ``figure`` as PNG at ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def write_run_figures(run_dir: str | Path) -> list[Path]:
    """Draw every figure the run folder's data allow; return the files written.

    ``figures/accuracy_matrix.png`` (heat map), ``figures/average_accuracy.png`` (AA after each
    task), ``figures/capacity.png`` (network capacity over training steps, HAT family) and
    ``figures/mask_usage.png`` (per-layer mask usage after each task, HAT family); without a
    task id at test (``head=cil``/``dil``) also ``figures/accuracy_matrix_task_aware.png``
    (the first heat map is then task-agnostic).
    """
    folder = Path(run_dir)
    target = folder / FIGURES_DIR
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    matrix = metrics["accuracy_matrix"]
    written = [
        save_figure(accuracy_heat_map(matrix), target / "accuracy_matrix.png"),
        save_figure(average_accuracy_figure(matrix), target / "average_accuracy.png"),
    ]
    aware = metrics.get("accuracy_matrix_task_aware")
    if aware:
        heat_map = accuracy_heat_map(aware, title="task-aware accuracy matrix (task id given)")
        written.append(save_figure(heat_map, target / "accuracy_matrix_task_aware.png"))
    curves = _read_curves(folder / "training_curves.csv")
    if any(record.get("capacity") not in (None, "") for record in curves):
        written.append(save_figure(capacity_figure(curves), target / "capacity.png"))
    tasks_file = folder / "tasks.json"
    tasks = (
        json.loads(tasks_file.read_text(encoding="utf-8"))["tasks"] if tasks_file.exists() else []
    )
    if any("mask_usage" in task for task in tasks):
        written.append(save_figure(mask_usage_figure(tasks), target / "mask_usage.png"))
    return written


def accuracy_heat_map(matrix: Sequence[Sequence[float]], *, title: str = "accuracy matrix"):
    """Heat map of a[t][tau] (rows: after task t; columns: test task tau).

    Values are written in the cells up to ``ANNOTATE_UP_TO`` tasks, and the figure grows with
    the number of tasks only that far; a longer run gets a fixed-size map without text, so its
    figure costs what a short run's does (an annotated 50-task map took 0.6 GB and 8 s).
    """
    tasks = len(matrix)
    grid = [[row[tau] if tau < len(row) else math.nan for tau in range(tasks)] for row in matrix]
    if tasks <= ANNOTATE_UP_TO:
        figure = new_figure(max(4.5, 1.5 + 0.7 * tasks), max(3.5, 1.0 + 0.6 * tasks))
    else:  # no text in the cells: a fixed size is enough (and costs a fixed amount of memory)
        figure = new_figure(7.0, 6.0)
    axes = figure.add_subplot()
    image = axes.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis")
    figure.colorbar(image, ax=axes, label="test accuracy")
    for t, row in enumerate(matrix if tasks <= ANNOTATE_UP_TO else []):
        for tau, value in enumerate(row):
            colour = "black" if value > 0.6 else "white"
            axes.text(tau, t, f"{value:.2f}", ha="center", va="center", color=colour, fontsize=8)
    every = max(1, -(-tasks // ANNOTATE_UP_TO))
    ticks = list(range(0, tasks, every))
    axes.set_xticks(ticks, [str(i + 1) for i in ticks])
    axes.set_yticks(ticks, [str(i + 1) for i in ticks])
    axes.set_xlabel("test task")
    axes.set_ylabel("after training task")
    axes.set_title(title)
    return figure


def average_accuracy_figure(matrix: Sequence[Sequence[float]]):
    """AA_t = mean of row t, after each task t."""
    curve = [sum(row) / len(row) for row in matrix]
    figure = new_figure()
    axes = figure.add_subplot()
    axes.plot(range(1, len(curve) + 1), curve, marker=_marker(len(curve)))
    _task_axis(axes, len(curve))
    axes.set_ylabel("average accuracy over seen tasks")
    axes.set_title("AA after each task")
    return figure


def capacity_figure(curves: Sequence[Mapping[str, Any]]):
    """Network capacity (mean adjustment rate) over the run's training steps."""
    steps, values, boundaries = _run_steps(curves, "capacity")
    figure = new_figure(6.0, 3.5)
    axes = figure.add_subplot()
    axes.plot(steps, values)
    for boundary in boundaries if len(boundaries) < ANNOTATE_UP_TO else []:
        axes.axvline(boundary, color="grey", linewidth=0.8, linestyle=":")
    axes.set_xlabel("training step (whole run; dotted: task boundaries)")
    axes.set_ylabel("network capacity")
    axes.set_ylim(0.0, 1.05)
    axes.set_title("capacity over steps")
    return figure


def mask_usage_figure(tasks: Sequence[Mapping[str, Any]]):
    """Per layer: fraction of units in each task's mask and in the cumulative mask."""
    rows = [task for task in tasks if "mask_usage" in task]
    keys = list(rows[0]["mask_usage"])
    figure = new_figure(9.0, 3.5)
    for index, kind in enumerate(("task", "cumulative")):
        axes = figure.add_subplot(1, 2, index + 1)
        for key in keys:
            task_ids = [int(row["task"]) for row in rows]
            usage = [row["mask_usage"][key][kind] for row in rows]
            axes.plot(task_ids, usage, marker=_marker(len(task_ids)), label=key)
        _task_axis(axes, max(int(row["task"]) for row in rows))
        axes.set_ylabel(f"fraction of units ({kind} mask)")
        axes.set_title(f"{kind} mask usage per layer")
        axes.legend(fontsize=7)
    return figure


def _task_axis(axes, tasks: int) -> None:  # noqa: ANN001
    """At most ``ANNOTATE_UP_TO`` tick labels, so a long run's figure stays as cheap."""
    every = max(1, -(-tasks // ANNOTATE_UP_TO))
    axes.set_xticks(range(1, tasks + 1, every))
    axes.set_xlabel("after training task")
    axes.set_ylim(0.0, 1.05)
    axes.grid(alpha=0.3)


def _marker(points: int) -> str | None:
    """A dot per task while there are few tasks; a plain line for long runs."""
    return "o" if points <= ANNOTATE_UP_TO else None


def _run_steps(
    curves: Sequence[Mapping[str, Any]], column: str
) -> tuple[list[int], list[float], list[int]]:
    """Steps (run-wide, as recorded) and values of ``column``; the last step of each task but
    the last (the task boundaries)."""
    ends: dict[int, int] = {}
    steps, values = [], []
    for record in curves:
        task, step = int(record["task"]), int(record["step"])
        ends[task] = max(ends.get(task, step), step)
        if record.get(column) not in (None, ""):
            steps.append(step)
            values.append(float(record[column]))
    return steps, values, [ends[task] for task in sorted(ends)][:-1]


def _read_curves(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
