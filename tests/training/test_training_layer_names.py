"""One naming of layers in every file a run writes: tasks.json, training_curves.csv, the logs."""

from __future__ import annotations

import csv
import json

from hatcl.cli_run import run_command


def _layers(columns, prefix: str) -> set[str]:
    return {c.removeprefix(prefix) for c in columns if c.startswith(prefix)}


def test_layer_names_agree_across_files(tmp_path):
    run = tmp_path / "run"
    args = [
        "algorithm=adahat",
        "backbone.hidden_dims=[16,8]",
        "data.num_tasks=2",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "trainer.num_threads=1",
        "trainer.loggers=[csv]",
        "trainer.figures=false",
        f"output_dir={run}",
    ]
    assert run_command(args) == 0
    tasks = json.loads((run / "tasks.json").read_text())["tasks"]
    masks = set(tasks[-1]["mask_usage"])
    assert masks == {"fc1", "fc2"}  # the MLP's mask keys, one per hidden layer
    with (run / "training_curves.csv").open() as handle:
        curves = next(csv.reader(handle))
    with (run / "logs" / "csv" / "version_0" / "metrics.csv").open() as handle:
        logged = next(csv.reader(handle))
    for prefix in ("rate_mean/", "rate_min/", "rate_below_half/"):
        assert _layers(curves, prefix) == masks, prefix
        assert _layers(logged, prefix) == masks, prefix
