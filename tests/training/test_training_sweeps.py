"""Hydra multirun sweeps: each job its own run folder; basic and joblib launchers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hatcl.cli_run import run_command

SRC = Path(__file__).resolve().parents[2] / "src"
TINY = [
    "trainer.max_epochs=1",
    "data.num_tasks=2",
    "trainer.enable_progress_bar=false",
    "trainer.num_threads=1",
    "trainer.loggers=[]",
    "trainer.figures=false",
    "trainer.checkpoints=false",
]


def _jobs(sweep: Path) -> dict[str, dict]:
    """algorithm name -> metrics, for every job folder of a sweep."""
    jobs = {}
    for folder in sorted(p for p in sweep.iterdir() if p.is_dir()):
        config = (folder / "config.yaml").read_text()
        name = next(line.split(":")[1].strip() for line in config.splitlines() if "name:" in line)
        jobs[name] = json.loads((folder / "metrics.json").read_text())
    return jobs


def test_basic_launcher_runs_each_configuration_in_its_own_folder(tmp_path):
    sweep = tmp_path / "sweep"
    code = run_command(["-m", "algorithm=hat,finetuning", *TINY, f"hydra.sweep.dir={sweep}"])
    assert code == 0
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    jobs = _jobs(sweep)
    assert set(jobs) == {"hat", "finetuning"}
    assert "final_capacity" in jobs["hat"] and "final_capacity" not in jobs["finetuning"]
    assert jobs["hat"]["accuracy_matrix"] != jobs["finetuning"]["accuracy_matrix"]


def test_user_error_in_a_sweep_exits_2(tmp_path, capsys):
    code = run_command(["-m", "seed=1,2", "trainer.max_epochs=0", f"hydra.sweep.dir={tmp_path}"])
    assert code == 2
    assert "trainer.max_epochs must be an int >= 1, got 0" in capsys.readouterr().err


def test_joblib_launcher_with_two_workers(tmp_path):
    sweep = tmp_path / "sweep"
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "hatcl.cli",
            "run",
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "algorithm=hat,finetuning",
            *TINY,
            f"hydra.sweep.dir={sweep}",
        ],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    jobs = _jobs(sweep)
    assert set(jobs) == {"hat", "finetuning"}
    # same configuration and seed as the basic launcher's jobs: same results
    basic = tmp_path / "basic"
    assert run_command(["-m", "algorithm=hat", *TINY, f"hydra.sweep.dir={basic}"]) == 0
    assert _jobs(basic)["hat"] == jobs["hat"]
