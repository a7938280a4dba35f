"""The HTML report of a sweep (or any folders of runs): configurations side by side.

Runs are grouped as ``hatcl compare`` groups them (seeds pooled); every figure is computed
from the runs' ``metrics.json``.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path

from hatcl.reporting import html_page as H
from hatcl.reporting.compare import (
    RunGroup,
    find_runs,
    group_runs,
    load_run,
    table_metrics,
    table_rows,
)
from hatcl.reporting.svg import Bar, Series, bar_chart, heat_map, line_chart


def aa_band(group: RunGroup) -> Series:
    """AA after each task over the group's runs: the mean, with a band of +- one sample std."""
    curves = group.aa_curves()
    tasks = min(len(c) for c in curves)
    columns = [[c[t] for c in curves] for t in range(tasks)]
    means = [statistics.fmean(col) for col in columns]
    stds = [statistics.stdev(col) if len(col) > 1 else 0.0 for col in columns]
    return Series(
        f"{group.label} (n={len(curves)})",
        tuple(float(t) for t in range(1, tasks + 1)),
        tuple(means),
        tuple(m - s for m, s in zip(means, stds)),
        tuple(m + s for m, s in zip(means, stds)),
    )


def final_accuracy(group: RunGroup) -> list[float]:
    """Per task: the mean over the group's runs of the last row of the accuracy matrix."""
    rows = [run.metrics["accuracy_matrix"][-1] for run in group.runs]
    tasks = min(len(row) for row in rows)
    return [statistics.fmean(row[t] for row in rows) for t in range(tasks)]


def metric_bars(groups: Sequence[RunGroup], key: str, name: str) -> list[Bar]:
    """Mean +- sample std of metric ``key`` per group (groups without the metric left out)."""
    bars = []
    for group in groups:
        values = group.values(key)
        if values:
            std = statistics.stdev(values) if len(values) > 1 else None
            bars.append(Bar(group.label, name, statistics.fmean(values), std))
    return bars


def compare_table(groups: Sequence[RunGroup]) -> str:
    """The ``hatcl compare`` table with the seeds named; columns sortable."""
    header = ["configuration", "n", "seeds", *(label for label, _ in table_metrics(groups))]
    rows = []
    for row in table_rows(groups):
        cells = [(_value(mean, std), "" if mean is None else mean) for mean, std in row.cells]
        label = f"{row.label} (same seed: no std)" if row.repeated else row.label
        rows.append([(label, row.label), (str(row.runs), row.runs), ", ".join(row.seeds), *cells])
    notes = "".join(f'<p class="note">{H.esc(row.note)}</p>' for row in table_rows(groups))
    return H.table(header, rows, sortable=True) + notes


def sweep_figures(groups: Sequence[RunGroup]) -> list[str]:
    """Every figure of a sweep's report."""
    found = [
        H.figure(
            "compare",
            "comparison table",
            "Mean +- sample std over seeds per "
            "configuration (click a column to sort); each run's metrics.json.",
            compare_table(groups),
        ),
        H.figure(
            "aa-curves",
            "AA after each task per configuration",
            "Mean over seeds with a band of +- one std; average_accuracy_per_task of metrics.json.",
            line_chart(
                [aa_band(g) for g in groups],
                label="AA curves",
                x_label="after training task",
                y_label="average accuracy",
                y_range=(0.0, 1.0),
            ),
        ),
    ]
    finals = [final_accuracy(g) for g in groups]
    tasks = max(len(f) for f in finals)
    grid = [[f[t] if t < len(f) else None for t in range(tasks)] for f in finals]
    found.append(
        H.figure(
            "final-accuracy",
            "final accuracy per task per configuration",
            "Mean over seeds of the last row of accuracy_matrix (after the last task).",
            heat_map(
                grid,
                rows=[g.label for g in groups],
                columns=[f"T{t}" for t in range(1, tasks + 1)],
                label="final accuracy",
            ),
        )
    )
    for key, title, name, label in (
        ("average_accuracy", "final AA per configuration", "AA", "average accuracy"),
        ("forgetting", "forgetting per configuration", "forgetting", "accuracy drop"),
        ("final_capacity", "capacity per configuration", "capacity", "network capacity"),
    ):
        bars = metric_bars(groups, key, name)
        if bars:
            found.append(
                H.figure(
                    key.replace("_", "-"),
                    title,
                    f"Mean +- sample std over "
                    f"seeds of metrics.json {key} (configurations without it left out).",
                    bar_chart(bars, label=title, y_label=label),
                )
            )
    return found


def sweep_report_html(paths: Iterable[str | Path], *, title: str) -> str:
    """The whole report page of the runs found under ``paths``."""
    groups = group_runs([load_run(path) for path in find_runs(paths)])
    runs = sum(len(g.runs) for g in groups)
    listing = H.table(
        ["configuration", "run folders"],
        [[g.label, ", ".join(str(r.path) for r in g.runs)] for g in groups],
    )
    sections = [
        H.section("configurations", listing),
        H.section("results", *sweep_figures(groups)),
    ]
    subtitle = f"{runs} runs in {len(groups)} configurations"
    return H.page(f"hatcl sweep report: {title}", sections, subtitle=subtitle)


def _value(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"
