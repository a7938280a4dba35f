"""The run report: each figure's marks against the run folder's CSV and JSON files.

The folder is made by hand (``report_helpers.make_run``); expected values are read back from its
files or written out by hand here, never taken from the report code.
"""

from __future__ import annotations

import json
import statistics

import pytest
from report_helpers import (
    MASKS_FC1,
    MATRIX_TASK_AWARE,
    figure_html,
    make_run,
    marks,
    read_csv,
)

from hatcl.reporting.report import report_html


@pytest.fixture()
def run(tmp_path):
    folder = make_run(tmp_path / "run")
    return folder, report_html(folder)


def test_heat_map_cells_equal_the_accuracy_matrix_csv(run):
    folder, page = run
    cells = marks(figure_html(page, "accuracy"), "rect", "cell")
    rows = read_csv(folder / "accuracy_matrix.csv")
    expected = {
        (t, tau): float(value)
        for t, row in enumerate(rows)
        for tau, value in enumerate(list(row.values())[1:])
        if value != ""
    }
    assert {(int(c["data-row"]), int(c["data-col"])): float(c["data-value"]) for c in cells} == (
        expected
    )
    assert figure_html(page, "taw") == ""  # no task-aware matrix in this run


def test_task_aware_heat_map_when_the_run_has_one(tmp_path):
    page = report_html(make_run(tmp_path / "cil", task_aware=True))
    cells = marks(figure_html(page, "taw"), "rect", "cell")
    assert [float(c["data-value"]) for c in cells] == [v for row in MATRIX_TASK_AWARE for v in row]
    assert "accuracy matrix (task-aware)" in page


def test_aa_points_are_the_row_means(run):
    folder, page = run
    points = marks(figure_html(page, "aa"), "circle", "point")
    rows = read_csv(folder / "accuracy_matrix.csv")
    means = []
    for row in rows:
        values = [float(v) for k, v in row.items() if k != "after_task" and v != ""]
        means.append(sum(values) / len(values))
    assert [float(p["data-value"]) for p in points] == pytest.approx(means)


def test_forgetting_bars_are_hand_computed(run):
    _, page = run
    bars = marks(figure_html(page, "forgetting"), "rect", "bar")
    # task 1: max(0.9, 0.8) - 0.5 = 0.4; task 2: 0.7 - 0.6 = 0.1
    assert [b["data-group"] for b in bars] == ["T1", "T2"]
    assert [float(b["data-value"]) for b in bars] == pytest.approx([0.4, 0.1])


def test_mask_usage_and_capacity_equal_tasks_json(run):
    folder, page = run
    tasks = json.loads((folder / "tasks.json").read_text())["tasks"]
    usage = figure_html(page, "mask-usage")
    bars = marks(usage, "rect", "bar")
    assert [float(b["data-value"]) for b in bars] == [t["mask_usage"]["fc1"]["task"] for t in tasks]
    cumulative = [float(p["data-value"]) for p in marks(usage, "circle", "point")]
    assert cumulative == [t["mask_usage"]["fc1"]["cumulative"] for t in tasks]
    capacity = marks(figure_html(page, "capacity"), "circle", "point")
    assert [float(p["data-value"]) for p in capacity] == [t["capacity"] for t in tasks]


def test_mask_rows_count_used_units_and_tell_shared_from_own(run):
    _, page = run
    masks = figure_html(page, "masks")
    fc1 = masks[masks.index("<b>fc1</b>") : masks.index("<b>fc2</b>")]
    rows = marks(fc1, "g", "mask-row")
    assert [int(r["data-used"]) for r in rows] == [sum(m) for m in MASKS_FC1]
    # unit 1 is used by tasks 1 and 2: shared; unit 0 by task 1 alone; 4-5 by task 3 alone
    assert "task 1, units 1-1: shared" in fc1 and "task 1, units 0-0: own" in fc1
    assert "task 3, units 4-5: own" in fc1 and "task 2, units 2-3: own" in fc1
    users = [int(u["data-value"]) for u in marks(fc1, "rect", "users")]
    assert users == [1, 2, 1]  # runs of equal counts: unit 0 | unit 1 | units 2-5
    assert "units 2-5: used by 1 task(s)" in fc1


def test_overlap_is_intersection_over_union(run):
    _, page = run
    overlap = figure_html(page, "overlap")
    fc1 = overlap[overlap.index("<b>fc1</b>") : overlap.index("<b>fc2</b>")]
    cells = {(int(c["data-row"]), int(c["data-col"])): float(c["data-value"])
             for c in marks(fc1, "rect", "cell")}  # fmt: skip
    # task 1 {0,1}, task 2 {1,2,3}, task 3 {4,5}: 1/4, 0, 0; the diagonal 1
    assert cells[(0, 1)] == cells[(1, 0)] == pytest.approx(0.25)
    assert cells[(0, 2)] == cells[(1, 2)] == 0.0
    assert [cells[(i, i)] for i in range(3)] == [1.0, 1.0, 1.0]
    fc2 = overlap[overlap.index("<b>fc2</b>") :]
    cells = {(int(c["data-row"]), int(c["data-col"])): float(c["data-value"])
             for c in marks(fc2, "rect", "cell")}  # fmt: skip
    assert cells[(0, 1)] == 1.0 and cells[(0, 2)] == 0.0  # tasks 1, 2 identical; 3 disjoint


def test_rate_boxes_are_the_medians_per_task_of_the_csv_column(run):
    folder, page = run
    boxes = marks(figure_html(page, "rates"), "g", "box")
    rows = read_csv(folder / "training_curves.csv")
    expected = []
    for task in ("1", "2", "3"):
        column = [r["rate_mean/fc1"] for r in rows if r["task"] == task]
        values = [float(value) for value in column if value]
        expected.append(statistics.median(values))
    assert [float(b["data-value"]) for b in boxes] == pytest.approx(expected)
    assert [b["data-group"] for b in boxes] == ["task 1", "task 2", "task 3"]


def test_training_curves_and_timing(run):
    folder, page = run
    rows = read_csv(folder / "training_curves.csv")
    curves = figure_html(page, "curves")
    loss = curves[curves.index('data-series="train_loss"') :]
    loss = loss[: loss.index("</g>")]
    points = [(float(p["data-x"]), float(p["data-value"])) for p in marks(loss, "circle", "point")]
    assert points == [(float(r["step"]), float(r["train_loss"])) for r in rows if r["train_loss"]]
    timing = json.loads((folder / "timing.json").read_text())
    bars = marks(figure_html(page, "timing"), "rect", "bar")
    assert [float(b["data-value"]) for b in bars] == timing["task_seconds_this_process"]


def test_a_run_without_checkpoints_has_no_mask_figures_but_the_others(tmp_path):
    page = report_html(make_run(tmp_path / "run", checkpoint=False))
    assert figure_html(page, "masks") == "" and figure_html(page, "overlap") == ""
    assert figure_html(page, "accuracy") and figure_html(page, "timing")


def test_the_page_is_self_contained(run):
    _, page = run
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page and " src=" not in page and "<link" not in page
    assert "<details><summary>config.yaml" in page and "name: fgadahat" in page
