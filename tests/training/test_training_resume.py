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
from hatcl.training.checkpoint import load_checkpoint
from signal_at import SignalAt

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
    # the resumed part continues the CSV log: one file, the same as the uninterrupted run's
    _assert_one_csv_log(run, uninterrupted)


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


# -- signals: stop within a step with an in-task checkpoint, resume mid-task ------------------

TWO_EPOCHS = [*THREE_TASKS, "trainer.max_epochs=2"]  # 21 steps per epoch, 42 per task
OUTPUTS = ("metrics.json", "tasks.json", "training_curves.csv", "accuracy_matrix.csv")


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "two_epochs"
    assert run_command([*TWO_EPOCHS, f"output_dir={run}"]) == 0
    return run


def _assert_one_csv_log(run: Path, reference: Path) -> None:
    assert sorted(p.name for p in (run / "logs" / "csv").iterdir()) == ["version_0"]
    log = Path("logs", "csv", "version_0", "metrics.csv")
    assert (run / log).read_bytes() == (reference / log).read_bytes()


def _assert_same_outputs(run: Path, reference: Path) -> None:
    for name in OUTPUTS:
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name
    _assert_one_csv_log(run, reference)


@pytest.mark.parametrize(
    ("signum", "task_id", "step"),
    [
        (signal.SIGINT, 1, 0),  # before the first step of the run
        (signal.SIGTERM, 2, 7),  # inside the first epoch
        (signal.SIGINT, 2, 21),  # first step of the second epoch (after a validation)
        (signal.SIGTERM, 3, 41),  # before the last step of the run
    ],
)
def test_a_signal_stops_within_a_step_and_resume_equals_uninterrupted(
    tmp_path, two_epochs, capsys, signum, task_id, step
):
    run = tmp_path / "signalled"
    callback = SignalAt(task_id=task_id, step=step, signum=signum)
    capsys.readouterr()
    code = run_command([*TWO_EPOCHS, f"output_dir={run}"], callbacks=[callback])
    assert code == 128 + signum  # 130 for SIGINT, 143 for SIGTERM
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"interrupted during task {task_id}, step {step}/42; resume with: hatcl run "
        f"{' '.join(TWO_EPOCHS)} resume={run}"
    ]
    saved = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert saved == sorted(
        [*(f"task_{t}.ckpt" for t in range(1, task_id)), f"in_task_{task_id}.ckpt"]
    )
    assert not (run / "metrics.json").exists()

    assert run_command([*TWO_EPOCHS, f"resume={run}"]) == 0
    _assert_same_outputs(run, two_epochs)
    assert not (run / "checkpoints" / f"in_task_{task_id}.ckpt").exists()


def test_a_signal_between_tasks_stops_after_the_task(tmp_path, two_epochs, capsys):
    run = tmp_path / "between"
    callback = SignalAt(task_id=2, step=None, signum=signal.SIGTERM)
    capsys.readouterr()
    assert run_command([*TWO_EPOCHS, f"output_dir={run}"], callbacks=[callback]) == 143
    assert capsys.readouterr().err.startswith("interrupted after task 2; resume with: ")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["task_1.ckpt", "task_2.ckpt"]
    assert run_command([*TWO_EPOCHS, f"resume={run}"]) == 0
    _assert_same_outputs(run, two_epochs)


def test_sigterm_to_the_process_exits_143_with_one_line(tmp_path, two_epochs):
    run = tmp_path / "terminated"
    process = subprocess.run(
        [sys.executable, str(DRIVER), "--signal-at", "2:30:TERM", *TWO_EPOCHS, f"output_dir={run}"],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 143, process.stderr[-2000:]
    assert (
        process.stderr.strip()
        .splitlines()[-1]
        .startswith("interrupted during task 2, step 30/42; resume with: hatcl run ")
    )
    assert "Traceback" not in process.stderr
    assert run_command([*TWO_EPOCHS, f"resume={run}"]) == 0
    _assert_same_outputs(run, two_epochs)


def test_sigkill_mid_task_loses_at_most_n_steps_and_resumes_identically(tmp_path, two_epochs):
    run = tmp_path / "killed_mid_task"
    every = [*TWO_EPOCHS, "trainer.checkpoint_every_n_steps=5"]
    process = subprocess.run(
        [sys.executable, str(DRIVER), "--signal-at", "2:13:KILL", *every, f"output_dir={run}"],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
    in_task = load_checkpoint(run / "checkpoints" / "in_task_2.ckpt")
    assert in_task["position"]["step"] == 10  # the last multiple of 5 before the kill
    assert run_command([*every, f"resume={run}"]) == 0
    _assert_same_outputs(run, two_epochs)


def test_without_checkpoints_an_interruption_says_it_cannot_resume(tmp_path, capsys):
    run = tmp_path / "no_checkpoints"
    overrides = [*THREE_TASKS, "data.num_tasks=1", "trainer.checkpoints=false"]
    callback = SignalAt(task_id=1, step=3, signum=signal.SIGINT)
    capsys.readouterr()
    assert run_command([*overrides, f"output_dir={run}"], callbacks=[callback]) == 130
    err = capsys.readouterr().err
    assert "interrupted during task 1, step 3/" in err and "cannot be resumed" in err
