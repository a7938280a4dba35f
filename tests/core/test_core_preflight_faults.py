"""Preflight faults: options checked whatever else is chosen, no folder left, low disk space."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import torch

from hatcl.cli_run import run_command
from hatcl.preflight_checks import disk_space_warning

QUICK = [
    "data.num_tasks=1",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.num_threads=1",
    "trainer.loggers=[]",
    "trainer.figures=false",
]


def test_a_plugin_option_is_refused_whatever_the_importance_type(tmp_path, capsys):
    run = tmp_path / "run"
    args = [
        "algorithm=fgadahat",
        "algorithm.importance_type=activation_abs",  # not the measure that uses the gates
        "algorithm.stochastic_gates_std=-1",
        *QUICK,
        f"output_dir={run}",
    ]
    assert run_command(args) == 2
    err = capsys.readouterr().err
    assert "stochastic_gates_std" in err and "-1" in err and "Traceback" not in err
    assert not run.exists()


def test_an_empty_output_dir_with_hydra_flags_is_refused_and_writes_nothing(
    tmp_path, monkeypatch, capsys
):
    presets = tmp_path / "presets"
    presets.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert run_command(["--config-dir", str(presets), "output_dir=", *QUICK]) == 2
    assert "output_dir='' is empty" in capsys.readouterr().err
    assert list(work.iterdir()) == []  # the run did not go into the current folder


def test_a_refused_configuration_with_hydra_flags_leaves_no_folder(tmp_path, capsys):
    presets = tmp_path / "presets"
    presets.mkdir()
    run = tmp_path / "run"
    args = ["--config-dir", str(presets), f"output_dir={run}", *QUICK, "trainer.max_epochs=0"]
    assert run_command(args) == 2
    assert "trainer.max_epochs must be an int >= 1, got 0" in capsys.readouterr().err
    assert not run.exists()


def _config(num_tasks: int, checkpoints: bool = True) -> SimpleNamespace:
    return SimpleNamespace(
        trainer=SimpleNamespace(checkpoints=checkpoints),
        data=SimpleNamespace(num_tasks=num_tasks),
    )


def test_disk_space_warning_below_twice_the_expected_checkpoints(tmp_path, monkeypatch):
    model = torch.nn.Linear(10, 5)  # 55 float32 parameters: 220 bytes
    # a checkpoint: 4 copies of the parameters = 880 bytes; 3 tasks = 2640 bytes; twice: 5280
    usage = SimpleNamespace(total=10**9, used=0, free=5279)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage)
    note = disk_space_warning(_config(3), model=model, run_dir=tmp_path / "new" / "run")
    assert note is not None
    assert "only 5.2 KB free" in note and "about 2.6 KB (880 bytes per task)" in note
    usage.free = 5280
    assert disk_space_warning(_config(3), model=model, run_dir=tmp_path) is None
    usage.free = 0
    assert disk_space_warning(_config(3, checkpoints=False), model=model, run_dir=tmp_path) is None
    assert disk_space_warning(_config(3), model=None, run_dir=tmp_path) is None


def test_the_low_space_warning_is_printed_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    real = shutil.disk_usage
    monkeypatch.setattr(
        shutil, "disk_usage", lambda path: SimpleNamespace(total=1, used=0, free=1)
    )
    run = tmp_path / "run"
    assert run_command(["algorithm=hat", *QUICK, f"output_dir={run}"]) == 0
    monkeypatch.setattr(shutil, "disk_usage", real)
    err = capsys.readouterr().err
    assert "hatcl: warning: only 1 bytes free on the disk of" in err
    assert (run / "metrics.json").is_file() and Path(run, "checkpoints", "task_1.ckpt").is_file()


def test_every_measure_declares_its_plugin_options_in_its_registry_entry():
    from hatcl.importance.registry import IMPORTANCE_TYPES, MeasureInfo

    for name in IMPORTANCE_TYPES.names():
        measure = IMPORTANCE_TYPES.get(name)
        info = IMPORTANCE_TYPES.info(name) or MeasureInfo()
        assert tuple(measure.plugin_options) == info.plugin_options, name
        assert (measure.plugin is not None) == bool(info.plugin_options), name


def test_checking_the_default_configuration_imports_no_attribution_package(tmp_path):
    """The default measure needs no Captum: preflight must not import it (about 1 s)."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from hatcl.cli_overrides import compose_config\n"
        "from hatcl.cli_run import plan_run\n"
        f"plan_run(compose_config(['output_dir={tmp_path / 'run'}']))\n"
        "print(sorted(m for m in ('captum', 'matplotlib') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
