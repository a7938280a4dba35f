"""The command line and what a run leaves: version, help, list, run.log, file modes, step axis,
optimizers and schedulers without ``+``, error kinds, presets of one's own, measures by path."""

from __future__ import annotations

import csv
import gzip
import logging
import logging.config
import os
import stat

import pytest

from hatcl.cli import main
from hatcl.cli_run import compose_config, run_from_config
from hatcl.training.run_callbacks import RunCallback

TINY = [
    "data.num_tasks=2",
    "data.train_subset=200",
    "data.test_subset=100",
    "trainer.max_epochs=1",
    "trainer.figures=false",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One tiny FG-AdaHAT run under umask 027 (its files must be 0640, not mkstemp's 0600)."""
    folder = tmp_path_factory.mktemp("cli") / "run"
    previous = os.umask(0o027)
    try:
        run_from_config(compose_config([*TINY, f"output_dir={folder}"]))
    finally:
        os.umask(previous)
    return folder


def test_version_and_own_run_help(capsys):
    from hatcl import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"hatcl {__version__}\n"
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: hatcl run") and "Hydra" not in out.splitlines()[0]
    assert "adamw" in out and "permuted_digits" in out and "reference_run" in out


def test_list_prints_only_the_groups_asked_for(capsys):
    assert main(["list", "algorithm"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("algorithm:\n") and "fgadahat" in out
    assert "importance_type:" not in out and "input_weight_abs_sum" not in out
    assert main(["list", "importance_types"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("importance_type:\n") and "hat " not in out
    assert main(["list", "nonsense"]) == 2
    assert "unknown group 'nonsense'" in capsys.readouterr().err


def test_run_log_holds_configuration_tasks_and_metrics(finished):
    log = (finished / "run.log").read_text()
    assert "resolved configuration:" in log and "name: fgadahat" in log
    assert "task 1/2 test accuracy" in log and "task 2/2 test accuracy" in log
    assert "finished: average_accuracy" in log


def test_run_log_is_written_after_existing_loggers_were_disabled(tmp_path):
    """Hydra configures logging for every sweep job with ``disable_existing_loggers``: the jobs
    after the first (and any run after a sweep in one process) must still fill their run.log."""
    hatcl_logger = logging.getLogger("hatcl")
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": True})
    assert hatcl_logger.disabled
    try:
        run_from_config(compose_config([*TINY, "algorithm=hat", f"output_dir={tmp_path / 'r'}"]))
    finally:
        hatcl_logger.disabled = False
    log = (tmp_path / "r" / "run.log").read_text()
    assert "resolved configuration:" in log and "finished: average_accuracy" in log


def test_files_get_the_users_umask_not_0600(finished):
    for name in ("metrics.json", "config.yaml", "training_curves.csv", "checkpoints/task_2.ckpt"):
        assert stat.S_IMODE((finished / name).stat().st_mode) == 0o640, name


def test_curves_and_loggers_count_steps_on_one_run_wide_axis(finished):
    with (finished / "training_curves.csv").open() as handle:
        curves = [row for row in csv.DictReader(handle) if row["train_loss"]]
    logs = finished / "logs" / "csv" / "version_0" / "metrics.csv"
    with logs.open() as handle:
        logged = [row for row in csv.DictReader(handle) if row.get("train_loss")]
    # log_every_n_steps=1: the curves' steps are 1, 2, ... over both tasks, without a restart
    assert [int(row["step"]) for row in curves] == list(range(1, len(curves) + 1))
    assert {row["task"] for row in curves} == {"1", "2"}
    assert [int(row["step"]) for row in logged] == [int(row["step"]) for row in curves]


class _Crash(RunCallback):
    def on_task_saved(self, *, task_id, run_dir):
        raise RuntimeError("boom after task 1")


def test_a_crash_leaves_its_traceback_in_run_log(tmp_path):
    folder = tmp_path / "crash"
    with pytest.raises(RuntimeError, match="boom"):
        run_from_config(compose_config([*TINY, f"output_dir={folder}"]), callbacks=[_Crash()])
    log = (folder / "run.log").read_text()
    assert "the run failed: RuntimeError: boom after task 1" in log
    assert "Traceback (most recent call last)" in log


def test_adamw_and_a_scheduler_without_plus(tmp_path):
    args = [
        *TINY,
        "optimizer=adamw",
        "optimizer.options.amsgrad=true",
        "optimizer.scheduler=step",
        "optimizer.scheduler_options.step_size=1",
        f"output_dir={tmp_path / 'run'}",
    ]
    assert main(["run", *args]) == 0
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "name: adamw" in config and "step_size: 1" in config


def test_a_missing_scheduler_option_is_named_up_front(tmp_path, capsys):
    assert main(["run", *TINY, "optimizer.scheduler=step", f"output_dir={tmp_path / 'r'}"]) == 2
    err = capsys.readouterr().err
    assert "optimizer.scheduler=step needs optimizer.scheduler_options step_size" in err
    assert "optimizer.scheduler_options.step_size=<value>" in err
    assert not (tmp_path / "r").exists()


def test_a_damaged_data_file_is_a_data_error(tmp_path, capsys):
    root = tmp_path / "fmnist"
    root.mkdir()
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    names += ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    for name in names:
        with gzip.open(root / f"{name}.gz", "wb") as handle:
            handle.write(b"\x00\x00\x08\x03")  # an IDX header cut short
    code = main(["run", *TINY, "data=permuted_fashion_mnist", f"data.root={root}",
                 f"output_dir={tmp_path / 'run'}"])  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.startswith("hatcl: data error: ")


def test_a_preset_of_ones_own_is_accepted_with_config_dir(tmp_path, capsys):
    (tmp_path / "presets" / "algorithm").mkdir(parents=True)
    (tmp_path / "presets" / "algorithm" / "my_hat.yaml").write_text(
        "defaults:\n  - hat\n  - _self_\ns_max: 123\n"
    )
    args = ["--config-dir", str(tmp_path / "presets"), "algorithm=my_hat", *TINY]
    assert main(["run", *args, f"output_dir={tmp_path / 'run'}"]) == 0
    assert "s_max: 123" in (tmp_path / "run" / "config.yaml").read_text()
    assert main(["run", "algorithm=my_hat", *TINY]) == 2
    assert "--config-dir" in capsys.readouterr().err


def test_an_importance_measure_by_import_path(tmp_path, monkeypatch):
    (tmp_path / "my_measures.py").write_text(
        "from hatcl.importance.base import ImportanceMeasure\n"
        "def ones(ctx):\n"
        "    acts = ctx.output.backbone.activations\n"
        "    return {k: h.new_ones(h.shape[1]) for k, h in acts.items()}\n"
        "ONES = ImportanceMeasure(compute=ones)\n"
        "NOT_A_MEASURE = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    run = tmp_path / "run"
    cfg = compose_config([*TINY, "algorithm.importance_type=my_measures:ONES", f"output_dir={run}"])
    result = run_from_config(cfg)
    assert result.module.algorithm.importance_type == "my_measures:ONES"
    bad = compose_config([*TINY, "algorithm.importance_type=my_measures:NOT_A_MEASURE"])
    with pytest.raises(ValueError, match="is a int, not an ImportanceMeasure"):
        run_from_config(bad)
