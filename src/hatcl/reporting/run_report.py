"""The HTML report of one run folder: every figure is computed from the folder's own files."""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hatcl.reporting import html_page as H
from hatcl.reporting.report_masks import mask_svg, mask_usage_rows, overlap_svg, read_masks
from hatcl.reporting.svg import Bar, Box, Series, bar_chart, box_chart, heat_map, line_chart

#: Headline metrics of metrics.json, in the order shown.
SUMMARY_KEYS = (
    ("AA", "average_accuracy"),
    ("BWT", "bwt"),
    ("forgetting", "forgetting"),
    ("FWT", "fwt"),
    ("capacity", "final_capacity"),
    ("AA (task-aware)", "average_accuracy_task_aware"),
)
#: Training-curve columns drawn (those the run recorded).
CURVE_COLUMNS = ("train_loss", "train_accuracy", "val_accuracy", "capacity")
RATE_PREFIX = "rate_mean/"


@dataclass(frozen=True)
class RunFiles:
    """What a run folder holds, read once: the sources of every figure."""

    folder: Path
    config_text: str
    metrics: dict[str, Any]
    tasks: list[dict[str, Any]]
    curves: list[dict[str, str]]
    timing: dict[str, Any]


def read_run_files(folder: str | Path) -> RunFiles:
    """Read ``metrics.json`` (required) and the optional files of a run folder."""
    root = Path(folder)
    metrics_file = root / "metrics.json"
    if not metrics_file.is_file():
        raise FileNotFoundError(f"{str(root)!r} holds no finished run (no metrics.json)")
    config = root / "config.yaml"
    return RunFiles(
        folder=root,
        config_text=config.read_text(encoding="utf-8") if config.is_file() else "",
        metrics=json.loads(metrics_file.read_text(encoding="utf-8")),
        tasks=_json(root / "tasks.json").get("tasks", []),
        curves=_csv(root / "training_curves.csv"),
        timing=_json(root / "timing.json"),
    )


def forgetting_per_task(matrix: Sequence[Sequence[float]]) -> list[float]:
    """``max_{t<T} a[t][tau] - a[T][tau]`` for every task ``tau < T`` (the terms of forgetting)."""
    last = len(matrix) - 1
    return [
        max(matrix[t][tau] for t in range(tau, last)) - matrix[last][tau] for tau in range(last)
    ]


def aa_per_task(metrics: Mapping[str, Any], key: str = "accuracy_matrix") -> list[float]:
    """AA after each task: the mean of each row of the matrix."""
    return [sum(row) / len(row) for row in metrics[key]]


def rate_boxes(curves: Sequence[Mapping[str, str]]) -> list[Box]:
    """Per task and layer: the distribution over the task's steps of the layer's mean rate."""
    columns = [c for c in (curves[0] if curves else {}) if c.startswith(RATE_PREFIX)]
    boxes = []
    for task in dict.fromkeys(record["task"] for record in curves):
        for column in columns:
            values = sorted(
                float(r[column]) for r in curves if r["task"] == task and r.get(column, "") != ""
            )
            if values:
                boxes.append(_box(f"task {task}", column[len(RATE_PREFIX) :], values))
    return boxes


def _box(group: str, series: str, values: list[float]) -> Box:
    q1, median, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return Box(group, series, values[0], q1, median, q3, values[-1])


def curve(curves: Sequence[Mapping[str, str]], column: str) -> tuple[list[float], list[float]]:
    """Run-wide steps and values of a training-curve column (rows where it is recorded)."""
    rows = [r for r in curves if r.get(column, "") != ""]
    return [float(r["step"]) for r in rows], [float(r[column]) for r in rows]


def accuracy_figures(metrics: Mapping[str, Any]) -> list[str]:
    """Heat maps of the task-agnostic and (when recorded) task-aware accuracy matrices."""
    found = []
    for key, name in (("accuracy_matrix", "accuracy"), ("accuracy_matrix_task_aware", "taw")):
        matrix = metrics.get(key)
        if not matrix:
            continue
        size = len(matrix)
        grid = [[row[j] if j < len(row) else None for j in range(size)] for row in matrix]
        title = "accuracy matrix" + (" (task-aware)" if name == "taw" else "")
        content = heat_map(
            grid,
            rows=[f"after {t}" for t in range(1, size + 1)],
            columns=[f"T{t}" for t in range(1, size + 1)],
            label=title,
        )
        found.append(
            H.figure(
                name,
                title,
                f"Row t: after training task t; column: test task. metrics.json {key}.",
                content,
            )
        )
    return found


def curve_figures(files: RunFiles) -> list[str]:
    """AA per task, forgetting per task, then :func:`usage_figures`."""
    metrics, found = files.metrics, []
    aa = aa_per_task(metrics)
    found.append(
        H.figure(
            "aa",
            "AA after each task",
            "Mean of row t of metrics.json accuracy_matrix.",
            line_chart(
                [Series("AA", tuple(range(1, len(aa) + 1)), tuple(aa))],
                label="AA",
                x_label="after training task",
                y_label="average accuracy",
                y_range=(0.0, 1.0),
            ),
        )
    )
    drops = forgetting_per_task(metrics["accuracy_matrix"])
    if drops:
        bars = [Bar(f"T{tau}", "forgetting", value) for tau, value in enumerate(drops, 1)]
        found.append(
            H.figure(
                "forgetting",
                "forgetting per task",
                "Best earlier accuracy minus "
                "final accuracy, per task, from metrics.json accuracy_matrix.",
                bar_chart(bars, label="forgetting", y_label="accuracy drop"),
            )
        )
    return found + usage_figures(files)


def usage_figures(files: RunFiles) -> list[str]:
    """Mask usage per layer per task and capacity after each task (tasks.json)."""
    found = []
    usage = mask_usage_rows(files.tasks)
    if usage:
        bars = [
            Bar(f"task {t}", layer, share) for layer, rows in usage.items() for t, share, _ in rows
        ]
        series = [
            Series(
                f"{layer} (cumulative)",
                tuple(float(t) for t, _, _ in rows),
                tuple(c for _, _, c in rows),
            )
            for layer, rows in usage.items()
        ]
        found.append(
            H.figure(
                "mask-usage",
                "mask usage per layer per task",
                "Fraction of units "
                "in each task's mask (bars) and in the union of masks so far (lines); tasks.json "
                "mask_usage.",
                bar_chart(bars, label="mask usage", y_label="fraction of units", y_range=(0.0, 1.0))
                + line_chart(
                    series,
                    label="cumulative mask usage",
                    x_label="after training task",
                    y_label="fraction of units",
                    y_range=(0.0, 1.0),
                ),
            )
        )
    capacity = [
        (int(t["task"]), float(t["capacity"])) for t in files.tasks if t.get("capacity") is not None
    ]
    if capacity:
        line = Series(
            "capacity", tuple(float(t) for t, _ in capacity), tuple(c for _, c in capacity)
        )
        found.append(
            H.figure(
                "capacity",
                "network capacity after each task",
                "Mean adjustment "
                "rate over the network's parameters (1: free, 0: fixed); tasks.json capacity.",
                line_chart(
                    [line],
                    label="capacity",
                    x_label="after training task",
                    y_label="capacity",
                    y_range=(0.0, 1.0),
                ),
            )
        )
    return found


def mask_figures(files: RunFiles) -> list[str]:
    """The masks themselves and their overlap, per layer, from the last checkpoint."""
    layers = read_masks(files.folder)
    if not layers:
        return []
    images = "".join(f"<div><b>{layer.layer}</b><br>{mask_svg(layer)}</div>" for layer in layers)
    return [
        H.figure(
            "masks",
            "masks per layer",
            "Units (x) by task (rows): which units each task "
            "uses, alone or shared, and which are free; last checkpoint's mask store.",
            images,
        ),
        H.figure(
            "overlap",
            "mask overlap per layer",
            "|m_i and m_j| / |m_i or m_j| of the "
            "binary masks of tasks i and j; last checkpoint's mask store.",
            H.small_multiples({layer.layer: overlap_svg(layer) for layer in layers}),
        ),
    ]


def training_figures(files: RunFiles) -> list[str]:
    """Adjustment-rate distribution per task, training curves, timing."""
    found = []
    boxes = rate_boxes(files.curves)
    if boxes:
        found.append(
            H.figure(
                "rates",
                "adjustment rates per task",
                "Per layer, the distribution over the task's logged steps of the layer's "
                "mean gradient adjustment rate (whiskers: min and max, box: quartiles); "
                "training_curves.csv rate_mean/<layer>.",
                box_chart(boxes, label="adjustment rates", y_label="mean adjustment rate"),
            )
        )
    panels = {}
    for column in CURVE_COLUMNS:
        steps, values = curve(files.curves, column)
        if steps:
            panels[column] = line_chart(
                [Series(column, tuple(steps), tuple(values))],
                label=column,
                x_label="training step (whole run)",
                y_label=column,
                integer_x=False,
                points=len(steps) <= 200,
                size=(420.0, 180.0),
            )
    if panels:
        found.append(
            H.figure(
                "curves",
                "training curves",
                "Logged steps of training_curves.csv.",
                H.small_multiples(panels),
            )
        )
    seconds = files.timing.get("task_seconds_this_process") or []
    if seconds:
        offset = int(files.timing.get("resumed_after_task") or 0)
        bars = [Bar(f"task {offset + i}", "seconds", s) for i, s in enumerate(seconds, 1)]
        found.append(
            H.figure(
                "timing",
                "time per task",
                f"Wall time of each task trained by the "
                f"last process (total {files.timing.get('wall_time_seconds')} s); timing.json.",
                bar_chart(bars, label="timing", y_label="seconds"),
            )
        )
    return found


def run_report_html(folder: str | Path) -> str:
    """The whole report page of one run folder."""
    files = read_run_files(folder)
    metrics = files.metrics
    rows = [(label, metrics.get(key)) for label, key in SUMMARY_KEYS if key in metrics]
    sections = [
        H.section(
            "configuration",
            "<details><summary>config.yaml (click to open)</summary>"
            f"<pre>{H.esc(files.config_text)}</pre></details>",
        ),
        H.section("summary", H.table(["metric", "value"], rows)),
        H.section("accuracy", *accuracy_figures(metrics), *curve_figures(files)),
        H.section("masks", *mask_figures(files)),
        H.section("training", *training_figures(files)),
    ]
    return H.page(f"hatcl run report: {files.folder.name}", sections, subtitle=str(files.folder))


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
