"""Bad input, refused before any work: exit 2, one paragraph naming the key, nothing written.

Each case runs ``hatcl run`` in-process in an empty working folder; the run itself
(``run_experiment``) is replaced by a function that fails the test, so a case passes only if the
configuration is refused before data are loaded, a model is built or a folder is created.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hatcl import cli_run
from hatcl.cli import main

SRC = Path(__file__).resolve().parents[2] / "src"

# (overrides, text the message must contain); "{tmp}" is the test's working folder.
CASES = [
    # typos: the valid keys and the closest one are named
    (["algorithm.clamp_thrshold=5"], "did you mean algorithm.clamp_threshold?"),
    (["+algorithm.clamp_thrshold=5"], "did you mean algorithm.clamp_threshold?"),
    (["backbone.hidden_dim=[10]"], "did you mean backbone.hidden_dims?"),
    (["trainer.max_epoch=1"], "did you mean trainer.max_epochs?"),
    (["+trainer.max_epoch=1"], "did you mean trainer.max_epochs?"),
    (["data.num_task=2"], "did you mean data.num_tasks?"),
    (["+data.num_task=2"], "did you mean data.num_tasks?"),
    (["optimizer.learning_rate=0.1"], "optimizer.learning_rate"),
    (["sed=2"], "did you mean seed?"),
    (["+sed=2"], "did you mean seed?"),
    (["optimizer=sgd", "+optimizer.options.momentun=0.9"], "optimizer.options.momentum?"),
    (["optimizer.options.maximize=true"], "+optimizer.options.maximize=true"),
    (["optimizer.options.momentum=0.9"], "valid keys of optimizer.options: amsgrad, betas"),
    (["algorithm=hatt"], "did you mean 'hat'?"),
    (["data=permuted_digit"], "did you mean 'permuted_digits'?"),
    (["trainer.loggers=[csvv]"], "trainer.loggers 'csvv'"),
    (["optimizer.name=adamm"], "optimizer.name 'adamm'"),
    (["optimizer.scheduler=stepp"], "optimizer.scheduler 'stepp'"),
    (["trainer.strategy=dpp"], "trainer.strategy"),
    # wrong types; booleans only as booleans
    (["optimizer.lr=abc"], "optimizer.lr"),
    (["optimizer.weight_decay=abc"], "optimizer.weight_decay"),
    (["trainer.max_epochs=abc"], "trainer.max_epochs"),
    (["trainer.max_epochs=1.5"], "trainer.max_epochs"),
    (["trainer.batch_size=true"], "trainer.batch_size"),
    (["trainer.checkpoints=abc"], "trainer.checkpoints must be a bool (true or false)"),
    (["trainer.checkpoints=1"], "trainer.checkpoints must be a bool (true or false)"),
    (["trainer.figures=yes"], "trainer.figures must be a bool (true or false)"),
    (
        ["trainer.enable_progress_bar=0"],
        "trainer.enable_progress_bar must be a bool (true or false)",
    ),
    (["trainer.deterministic=maybe"], "trainer.deterministic must be a bool (true or false)"),
    (["data.download=1"], "data.download"),
    (["data.shuffle_classes=abc"], "data.shuffle_classes"),
    (["algorithm.filter_by_cumulative_mask=1"], "filter_by_cumulative_mask"),
    (["algorithm.s_max=abc"], "s_max"),
    (["seed=abc"], "seed"),
    (["trainer.loggers=csv"], "trainer.loggers"),
    (["optimizer.options=5"], "optimizer.options"),
    (["trainer.devices=abc"], "trainer.devices"),
    # out of range, inf and nan
    (["optimizer.lr=0"], "optimizer.lr"),
    (["optimizer.lr=-1"], "optimizer.lr"),
    (["optimizer.lr=inf"], "optimizer.lr must be a finite number"),
    (["optimizer.lr=nan"], "optimizer.lr must be a finite number"),
    (["optimizer.weight_decay=-0.1"], "optimizer.weight_decay"),
    (["trainer.max_epochs=0"], "trainer.max_epochs must be an int >= 1"),
    (["trainer.batch_size=0"], "trainer.batch_size"),
    (["trainer.eval_batch_size=-5"], "trainer.eval_batch_size"),
    (["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps"),
    (["trainer.num_threads=0"], "trainer.num_threads"),
    (["data.num_tasks=0"], "data.num_tasks"),
    (["data.val_fraction=1.0"], "data.val_fraction"),
    (["data=split_digits", "data.num_tasks=11"], "data.num_tasks"),
    (["seed=-1"], "seed must be an int >= 0"),
    (["algorithm.s_max=inf"], "s_max must be a finite number"),
    (["algorithm.s_max=nan"], "s_max must be a finite number"),
    (["algorithm.adjustment_intensity=inf"], "adjustment_intensity must be a finite number"),
    (["algorithm.base_importance=inf"], "base_importance must be a finite number"),
    (["algorithm.base_linear=inf"], "base_linear must be a finite number"),
    (["algorithm.clamp_threshold=-1"], "clamp_threshold"),
    (["algorithm=hat", "algorithm.s_max=0.5"], "s_max"),
    (["backbone.dropout=1.5"], "backbone.dropout"),
    (["backbone.hidden_dims=[0]"], "backbone.hidden_dims"),
    (["optimizer.scheduler=step"], "optimizer.scheduler_options"),
    (
        ["optimizer.scheduler=exponential", "+optimizer.scheduler_options.gama=0.5"],
        "did you mean optimizer.scheduler_options.gamma?",
    ),
    (["head=cil"], "head 'cil'"),
    (["cil.task_score=softmax"], "cil.task_score 'softmax'"),
    (["cil.task_score=no_such_pkg_q:fn"], "cannot import module 'no_such_pkg_q'"),
    (["cil.calibration=platt"], "cil.calibration 'platt'"),
    (["cil.calibration_per_class=0"], "cil.calibration_per_class"),
    (["cil.task_chunk=0"], "cil.task_chunk"),
    (["+cil.temperature=2"], "cil"),
    (["head=foo"], "head 'foo'"),
    # devices, precision, accelerators
    (["trainer.precision=8"], "trainer.precision must be one of"),
    (["trainer.precision=16-mixed"], "trainer.precision='16-mixed'"),
    (["trainer.accelerator=tpu"], "trainer.accelerator"),
    (["trainer.devices=0"], "trainer.devices=0"),
    (["trainer.devices=[0,1]"], "trainer.devices=[0, 1]"),
    # paths
    (["output_dir="], "output_dir='' is empty"),
    (["output_dir={tmp}/a_file/run"], "'{tmp}/a_file' is a file"),
    (["output_dir={tmp}/a_file"], "output_dir '{tmp}/a_file' exists and is not a folder"),
    (["output_dir={tmp}/someone_elses"], "is not empty and holds no hatcl run"),
    (["data.cache_dir={tmp}/a_file"], "data.cache_dir='{tmp}/a_file' is a file"),
    (["data.cache_dir={tmp}/a_file/cache"], "lies below the file"),
    (["data.root={tmp}/a_file"], "data.root='{tmp}/a_file' is a file"),
    (["resume={tmp}/nowhere"], "resume='{tmp}/nowhere' is not a run folder"),
    (["resume="], "resume=''"),
    (["reference_run={tmp}/someone_elses"], "reference_run '{tmp}/someone_elses'"),
]
if not torch.cuda.is_available():
    CASES.append((["trainer.accelerator=gpu"], "no CUDA GPU is available"))
if not torch.backends.mps.is_available():
    CASES.append((["trainer.accelerator=mps"], "MPS backend is not available"))


def _case_id(case) -> str:
    return " ".join(case[0])


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """An empty working folder holding a regular file and someone else's folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "someone_elses").mkdir()
    (tmp_path / "someone_elses" / "notes.txt").write_text("mine")

    def no_work(*args, **kwargs):
        raise AssertionError("the run started although the configuration is invalid")

    monkeypatch.setattr("hatcl.training.runner.run_plan", no_work)
    return tmp_path


def test_the_table_has_about_sixty_cases():
    assert len(CASES) >= 60


@pytest.mark.parametrize(("overrides", "expected"), CASES, ids=[_case_id(c) for c in CASES])
def test_bad_input_is_refused_before_any_work(workdir, capsys, overrides, expected):
    before = _listing(workdir)
    args = [o.replace("{tmp}", str(workdir)) for o in overrides]
    assert main(["run", *args]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("hatcl: configuration error: ")
    assert len(err.strip().splitlines()) == 1, err  # one paragraph
    assert "Traceback" not in out + err
    assert expected.replace("{tmp}", str(workdir)) in err
    assert _listing(workdir) == before  # nothing written, not even an empty folder


def test_the_default_logger_needs_no_extra_package(workdir, monkeypatch):
    """Without tensorboard the defaults are accepted and asking for it is refused clearly."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith("tensorboard") else real(name, *a),
    )
    started = []
    monkeypatch.setattr(cli_run, "_remove_unstarted", lambda *a, **k: None)
    monkeypatch.setattr(
        "hatcl.training.runner.run_plan", lambda *a, **k: started.append(True)
    )
    assert main(["run"]) == 0 and started == [True]
    assert main(["run", "trainer.loggers=[csv,tensorboard]"]) == 2


def test_tensorboard_missing_is_named(workdir, monkeypatch, capsys):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert main(["run", "trainer.loggers=[csv,tensorboard]"]) == 2
    err = capsys.readouterr().err
    assert "trainer.loggers entry 'tensorboard' needs the package tensorboard" in err
    assert "trainer.loggers=[csv]" in err


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("algorithm.clamp_thrshold=5", "did you mean algorithm.clamp_threshold?"),
        ("optimizer.lr=abc", "optimizer.lr"),
        ("trainer.accelerator=tpu", "trainer.accelerator"),
    ],
)
def test_refused_as_a_process_quickly_and_without_traceback(tmp_path, override, expected):
    """As a user sees it: a separate process, exit 2, before torch-heavy work (no Lightning)."""
    probe = (
        "import sys, time; t = time.perf_counter(); from hatcl.cli import main; "
        f"code = main(['run', {override!r}]); "
        "print(code, 'lightning' in sys.modules, round(time.perf_counter() - t, 2))"
    )
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    code, lightning_imported, _ = result.stdout.split()
    assert code == "2" and lightning_imported == "False"  # refused before the engine loads
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
    assert time.perf_counter() - started < 60
