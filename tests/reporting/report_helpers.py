"""Helpers of the report tests: a hand-made run folder and a reader of the figures' marks."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import torch

#: Hand-made accuracy matrix of a 3-task run.
MATRIX = [[0.9], [0.8, 0.7], [0.5, 0.6, 0.8]]
MATRIX_TASK_AWARE = [[0.95], [0.9, 0.85], [0.9, 0.8, 0.9]]
#: Masks of 3 tasks on a layer of 6 units (task 1 and 2 share unit 1; task 3 uses 4 and 5).
MASKS_FC1 = [[1, 1, 0, 0, 0, 0], [0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1]]
MASKS_FC2 = [[1, 0, 1, 0], [1, 0, 1, 0], [0, 1, 0, 0]]
TASKS = [
    {"task": 1, "capacity": 1.0, "mask_usage": {"fc1": {"task": 2 / 6, "cumulative": 2 / 6}}},
    {"task": 2, "capacity": 0.5, "mask_usage": {"fc1": {"task": 3 / 6, "cumulative": 4 / 6}}},
    {"task": 3, "capacity": 0.25, "mask_usage": {"fc1": {"task": 2 / 6, "cumulative": 1.0}}},
]
CURVES = [
    # task, epoch, step, train_loss, capacity, rate_mean/fc1, val_accuracy
    (1, 0, 10, 2.0, 1.0, 1.0, ""),
    (1, 0, 20, 1.5, 1.0, 1.0, ""),
    (1, 0, 22, "", "", "", 0.6),
    (2, 0, 30, 1.2, 0.6, 0.2, ""),
    (2, 0, 40, 1.0, 0.5, 0.4, ""),
    (2, 0, 50, 0.9, 0.5, 0.9, ""),
    (2, 0, 52, "", "", "", 0.7),
    (3, 0, 60, 0.8, 0.3, 0.1, ""),
    (3, 0, 70, 0.7, 0.25, 0.3, ""),
]
TIMING = {"wall_time_seconds": 9.5, "task_seconds_this_process": [3.0, 2.5, 4.0]}


def make_run(folder: Path, *, task_aware: bool = False, checkpoint: bool = True) -> Path:
    """A finished run folder with the files a run writes, holding the values above."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("algorithm:\n  name: fgadahat\nseed: 1\n")
    metrics = {
        "accuracy_matrix": MATRIX,
        "average_accuracy": sum(MATRIX[-1]) / 3,
        "average_accuracy_per_task": [sum(r) / len(r) for r in MATRIX],
        "bwt": -0.25,
        "forgetting": 0.25,
        "fwt": None,
        "final_capacity": 0.25,
    }
    if task_aware:
        metrics["accuracy_matrix_task_aware"] = MATRIX_TASK_AWARE
    (folder / "metrics.json").write_text(json.dumps(metrics))
    with (folder / "accuracy_matrix.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["after_task", "task_1", "task_2", "task_3"])
        for t, row in enumerate(MATRIX, 1):
            writer.writerow([t, *row, *[""] * (3 - len(row))])
    (folder / "tasks.json").write_text(json.dumps({"tasks": TASKS}))
    with (folder / "training_curves.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", "epoch", "step", "train_loss", "capacity", "rate_mean/fc1",
                         "val_accuracy"])  # fmt: skip
        writer.writerows(CURVES)
    (folder / "timing.json").write_text(json.dumps(TIMING))
    if checkpoint:
        from hatcl.training.checkpoint import save_checkpoint

        store = "backbone.masker.store."
        model = {
            f"{store}task_ids": torch.tensor([1, 2, 3]),
            f"{store}masks_fc1": torch.tensor(MASKS_FC1, dtype=torch.float32),
            f"{store}masks_fc2": torch.tensor(MASKS_FC2, dtype=torch.float32),
            "backbone.linears.0.weight": torch.zeros(6, 4),
        }
        save_checkpoint(folder / "checkpoints" / "task_3.ckpt", {"model": model})
    return folder


def make_summary_run(
    folder: Path, *, algorithm: str, seed: int, matrix: list, capacity: float | None = None
) -> Path:
    """A run folder holding only ``config.yaml`` and ``metrics.json`` (what compare reads)."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"algorithm:\n  name: {algorithm}\nseed: {seed}\n")
    last = matrix[-1]
    metrics = {
        "accuracy_matrix": matrix,
        "average_accuracy": sum(last) / len(last),
        "average_accuracy_per_task": [sum(r) / len(r) for r in matrix],
        "bwt": last[0] - matrix[0][0],
        "forgetting": matrix[0][0] - last[0],
        "fwt": None,
    }
    if capacity is not None:
        metrics["final_capacity"] = capacity
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def figure_html(page: str, key: str) -> str:
    """The HTML of the figure ``key`` of a report page ('' when the page has none)."""
    match = re.search(rf'<figure [^>]*data-figure="{re.escape(key)}".*?</figure>', page, re.S)
    return match.group(0) if match else ""


def marks(fragment: str, tag: str, cls: str) -> list[dict[str, str]]:
    """The attributes of every ``<tag class="cls ...">`` of ``fragment``."""
    found = []
    for match in re.finditer(rf'<{tag} class="{cls}\b[^"]*"([^>]*)>', fragment):
        found.append(dict(re.findall(r'([\w-]+)="([^"]*)"', match.group(1))))
    return found


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file."""
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))
