"""Kill-and-resume equals the uninterrupted run bit for bit; identical runs are identical."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hatcl.cli_run import run_command

SRC = Path(__file__).resolve().parents[2] / "src"
DRIVER = Path(__file__).resolve().parent / "run_driver.py"
THREE_TASKS = [
    "algorithm=fgadahat",  # masks, importances and their summative state must all resume
    "trainer.max_epochs=1",
    "data.num_tasks=3",
    "trainer.enable_progress_bar=false",
    "trainer.num_threads=1",
    "trainer.loggers=[csv]",
    "trainer.figures=false",
]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "uninterrupted"
    assert run_command([*THREE_TASKS, f"output_dir={run}"]) == 0
    return run


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_sigkill_after_task_2_then_resume_equals_uninterrupted(tmp_path, uninterrupted):
    run = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    process = subprocess.run(
        [sys.executable, str(DRIVER), "--kill-after-task", "2", *THREE_TASKS, f"output_dir={run}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "task_1.ckpt",
        "task_2.ckpt",
    ]
    assert not (run / "metrics.json").exists()

    assert run_command([*THREE_TASKS, f"resume={run}"]) == 0
    resumed, reference = _metrics(run), _metrics(uninterrupted)
    assert len(resumed["accuracy_matrix"]) == 3
    assert resumed["accuracy_matrix"] == reference["accuracy_matrix"]  # exact float equality
    assert (run / "metrics.json").read_bytes() == (uninterrupted / "metrics.json").read_bytes()
    for name in ("tasks.json", "training_curves.csv", "accuracy_matrix.csv"):
        assert (run / name).read_bytes() == (uninterrupted / name).read_bytes(), name
    assert json.loads((run / "timing.json").read_text())["resumed_after_task"] == 2
    # the resumed part logs into a new logger version; nothing earlier was overwritten
    assert sorted(p.name for p in (run / "logs" / "csv").iterdir()) == ["version_0", "version_1"]


def test_same_configuration_and_seed_give_identical_metrics(tmp_path, uninterrupted):
    again = tmp_path / "again"
    assert run_command([*THREE_TASKS, f"output_dir={again}"]) == 0
    assert (again / "metrics.json").read_bytes() == (uninterrupted / "metrics.json").read_bytes()
    assert set(_metrics(again)) >= {"accuracy_matrix", "average_accuracy", "bwt", "forgetting"}
    assert "wall_time_seconds" not in _metrics(again)


def test_deterministic_mode_is_reproducible(tmp_path):
    two_tasks = [*THREE_TASKS, "data.num_tasks=2", "trainer.deterministic=true"]
    first, second = tmp_path / "a", tmp_path / "b"
    try:
        assert run_command([*two_tasks, f"output_dir={first}"]) == 0
        assert run_command([*two_tasks, f"output_dir={second}"]) == 0
    finally:  # Lightning sets this process-wide flag; do not leak it into other tests
        torch.use_deterministic_algorithms(False)
    assert (first / "metrics.json").read_bytes() == (second / "metrics.json").read_bytes()


def test_a_run_folder_is_never_overwritten(uninterrupted, capsys):
    before = (uninterrupted / "metrics.json").read_bytes()
    assert run_command([*THREE_TASKS, f"output_dir={uninterrupted}"]) == 2
    assert "never overwritten" in capsys.readouterr().err
    assert (uninterrupted / "metrics.json").read_bytes() == before


def test_csv_logger_has_one_step_axis_for_the_whole_run(uninterrupted):
    with (uninterrupted / "logs" / "csv" / "version_0" / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    train_steps = [int(row["step"]) for row in rows if row["train_loss"]]
    assert train_steps == sorted(train_steps) and len(set(train_steps)) == len(train_steps)
    tests = [row for row in rows if row["average_accuracy"]]
    assert [int(float(row["task"])) for row in tests] == [1, 2, 3]
    reference = _metrics(uninterrupted)["average_accuracy_per_task"]
    assert [float(row["average_accuracy"]) for row in tests] == pytest.approx(reference)
    assert float(tests[2]["test_accuracy/task_1"]) == pytest.approx(
        _metrics(uninterrupted)["accuracy_matrix"][2][0]
    )
