"""Hydra multirun sweeps: each job its own run folder; basic and joblib launchers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hatcl import cli_run
from hatcl.cli_run import run_command
from signal_at import SignalAt

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


def test_output_dir_per_job_and_an_interrupted_sweep_continues(tmp_path, monkeypatch, capsys):
    sweep, runs = tmp_path / "sweep", tmp_path / "runs"
    tiny = [arg for arg in TINY if arg != "trainer.checkpoints=false"]
    args = ["-m", "seed=1,2", *tiny, f"output_dir={runs}/s_${{seed}}"]
    real = cli_run.run_from_config

    def second_job_interrupted(cfg, **kwargs):  # SIGTERM before step 3 of task 2 of seed 2
        callbacks = [SignalAt(task_id=2, step=3)] if cfg.seed == 2 else []
        return real(cfg, callbacks=callbacks, **kwargs)

    monkeypatch.setattr(cli_run, "run_from_config", second_job_interrupted)
    capsys.readouterr()
    assert run_command([*args, f"hydra.sweep.dir={sweep}"]) == 143
    err = capsys.readouterr().err
    assert f"with: hatcl run {' '.join(args)} resume={sweep}" in err and "Traceback" not in err
    assert (runs / "s_1" / "metrics.json").is_file()
    assert (runs / "s_2" / "checkpoints" / "in_task_2.ckpt").is_file()
    assert not (runs / "s_2" / "metrics.json").exists()
    assert [p.name for p in sweep.iterdir()] == ["multirun.yaml"]  # no empty job folders
    monkeypatch.undo()
    finished = (runs / "s_1" / "metrics.json").stat().st_mtime_ns
    assert run_command([*args, f"resume={sweep}"]) == 0
    assert "finished earlier in" in capsys.readouterr().out
    assert (runs / "s_1" / "metrics.json").stat().st_mtime_ns == finished
    alone = tmp_path / "alone"
    assert run_command([*tiny, "seed=2", f"output_dir={alone}"]) == 0
    resumed = (runs / "s_2" / "metrics.json").read_bytes()
    assert resumed == (alone / "metrics.json").read_bytes()


def test_a_sweep_shares_one_auto_reference_and_compare_leaves_it_out(tmp_path, capsys):
    from hatcl.reporting.compare import find_runs

    sweep = tmp_path / "sweep"
    args = ["-m", "algorithm=hat,finetuning", "reference_run=auto", *TINY]
    assert run_command([*args, f"hydra.sweep.dir={sweep}"]) == 0
    references = list((sweep / "references").iterdir())
    assert len(references) == 1  # one independent run for the two algorithms (same seed, data)
    assert "algorithm:\n  name: independent" in (references[0] / "config.yaml").read_text()
    assert capsys.readouterr().out.count("training the shared 'independent' FWT reference") == 1
    reference = json.loads((references[0] / "metrics.json").read_text())["accuracy_matrix"]
    for job in ("0", "1"):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        matrix = metrics["accuracy_matrix"]  # FWT (2 tasks) = a[2][2] - b[2], b: the reference's
        assert metrics["fwt"] == pytest.approx(matrix[1][1] - reference[1][1])
        assert not (sweep / job / "reference").exists()
    assert find_runs([sweep]) == [sweep / "0", sweep / "1"]


def _make_run_commands(run_dir: Path, args: list[str]) -> list[list[str]]:
    """The hatcl commands of the Makefile's ``run`` recipe, with ``RUN_DIR`` and ``ARGS`` set."""
    import shlex

    makefile = (SRC.parent / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nrun: install\n", 1)[1].split("\n\n", 1)[0]
    commands = []
    for line in recipe.replace("\\\n", " ").splitlines():
        line = line.strip().replace("$(RUN_DIR)", str(run_dir)).replace("$$", "$")
        words = shlex.split(line.replace("$(ARGS)", shlex.join(args)))
        assert words[0] == "$(BIN)/hatcl", line
        commands.append(words[1:])
    return commands


def test_make_run_is_one_sweep_and_each_run_equals_its_own_hatcl_run(tmp_path, capsys):
    """`make run` pays the start-up once (one process), with the numbers of three single runs;
    each job's header shows its folder pattern as typed (no Hydra escapes)."""
    from hatcl.cli import main

    commands = _make_run_commands(tmp_path / "quick", TINY)
    assert [c[:2] for c in commands] == [["run", "-m"], ["compare", str(tmp_path / "quick")]]
    for command in commands:
        assert main(command) == 0
    headers = [line for line in capsys.readouterr().out.splitlines() if line.startswith("== job")]
    assert len(headers) == 3
    assert all(f"output_dir={tmp_path / 'quick'}/${{algorithm.name}} " in h for h in headers)
    for algorithm in ("fgadahat", "hat", "finetuning"):
        single = tmp_path / f"single_{algorithm}"
        assert run_command([f"algorithm={algorithm}", *TINY, f"output_dir={single}"]) == 0
        swept_dir = tmp_path / "quick" / algorithm
        swept = json.loads((swept_dir / "metrics.json").read_text())
        alone = json.loads((single / "metrics.json").read_text())
        assert swept == alone, algorithm  # the same numbers
        files = [sorted(p.relative_to(d) for p in d.rglob("*")) for d in (swept_dir, single)]
        assert files[0] == files[1], algorithm  # the same files
        config = (swept_dir / "config.yaml").read_text().replace(str(swept_dir), str(single))
        assert config == (single / "config.yaml").read_text(), algorithm
    assert (tmp_path / "quick" / "comparison.md").is_file()
