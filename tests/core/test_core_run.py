"""End to end: run(cfg) on two tiny tasks, the run folder, and the CLI's error path."""

import json
import subprocess
import sys
import time

import pytest
import yaml

from hatcl.cli_run import compose_config, run_from_config

TINY = [
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "data.num_tasks=2",
    "data.train_subset=400",
]


def test_run_writes_the_run_folder(tmp_path):
    run_dir = tmp_path / "hat"
    result = run_from_config(compose_config([*TINY, "algorithm=hat", f"output_dir={run_dir}"]))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    matrix = metrics["accuracy_matrix"]
    assert [len(row) for row in matrix] == [1, 2]
    assert metrics["bwt"] == 0.0  # HAT: earlier tasks' outputs are unchanged
    assert metrics["forgetting"] == 0.0
    assert metrics["average_accuracy"] == pytest.approx(sum(matrix[1]) / 2)
    assert all(0.0 <= a <= 1.0 for row in matrix for a in row)
    assert result.metrics == metrics
    for name in ("config.yaml", "accuracy_matrix.csv", "tasks.json", "training_curves.csv"):
        assert (run_dir / name).is_file(), name
    rows = (run_dir / "accuracy_matrix.csv").read_text().splitlines()
    assert rows[0] == "after_task,task_1,task_2"
    assert rows[2].split(",")[1] == f"{matrix[1][0]:.6f}"
    tasks = json.loads((run_dir / "tasks.json").read_text())["tasks"]
    assert set(tasks[1]["mask_usage"]) == {"fc1", "fc2", "fc3"}
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["algorithm"]["name"] == "hat"


def test_a_run_folder_is_never_overwritten(tmp_path):
    run_dir = tmp_path / "once"
    cfg = compose_config(
        [*TINY, "data.num_tasks=1", "trainer.max_epochs=1", f"output_dir={run_dir}"]
    )
    run_from_config(cfg)
    with pytest.raises(ValueError, match="already holds a run"):
        run_from_config(cfg)


def _hatcl(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "hatcl.cli", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("algorithm=nope", "unknown algorithm 'nope'; valid choices for algorithm= are:"),
        ("trainer.max_epochs=-1", "trainer.max_epochs must be an int >= 1, got -1"),
        (
            "algorithm=hat algorithm.adjustment_mode=fast",
            "unknown adjustment_mode 'fast'; valid choices are: hat",
        ),
        ("data.scenario=shuffled", "shuffled"),
        ("trainer.nonsense=1", "nonsense"),
    ],
)
def test_bad_overrides_end_with_one_paragraph_and_exit_code_2(tmp_path, override, expected):
    result = _hatcl(
        "run",
        *override.split(),
        "trainer.enable_progress_bar=false",
        f"output_dir={tmp_path / 'x'}",
    )
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("hatcl: configuration error:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_help_and_list_answer_fast_without_torch():
    started = time.perf_counter()
    listing = _hatcl("list")
    elapsed = time.perf_counter() - started
    assert listing.returncode == 0
    assert "algorithm:\n  finetuning" in listing.stdout and "  hat " in listing.stdout
    assert elapsed < 1.0
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from hatcl.cli import main; main(['list']); main(['--help']);"
            "print('torch' in sys.modules)",
        ],
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip().endswith("False")
    assert "usage: hatcl" in _hatcl("--help").stdout


def test_unknown_command_is_a_usage_error():
    result = _hatcl("train")
    assert result.returncode == 2
    assert "unknown command 'train'" in result.stderr
