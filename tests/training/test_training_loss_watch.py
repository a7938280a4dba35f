"""A diverging run is not silent: an exploding loss warns, a non-finite one stops the run."""

from __future__ import annotations

import math

import pytest

from hatcl.cli_run import run_command
from hatcl.training.loss_watch import EXPLOSION_FACTOR, LossWatch, TrainingDiverged

QUICK = [
    "algorithm=finetuning",
    "data.num_tasks=2",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.num_threads=1",
    "trainer.loggers=[]",
    "trainer.figures=false",
]


def test_a_loss_grown_past_the_factor_warns_once_with_task_and_step(capsys):
    assert EXPLOSION_FACTOR == 1000.0
    watch = LossWatch()
    watch.check(400.0, task_id=2, step=30, first_loss=0.5)  # 800-fold: not yet
    assert capsys.readouterr().err == ""
    watch.check(501.0, task_id=2, step=40)  # 1002-fold the first step's 0.5
    err = capsys.readouterr().err
    assert "the training loss grew from 0.5 to 501 in task 2 by step 40" in err
    watch.check(9e9, task_id=2, step=50)
    assert capsys.readouterr().err == ""  # said once


def test_the_reference_is_the_smallest_loss_of_the_task(capsys):
    watch = LossWatch()
    watch.check(2.0, task_id=1, step=10, first_loss=3.0)
    watch.check(0.01, task_id=1, step=20)
    watch.check(9.0, task_id=1, step=30)  # 900-fold the smallest, 0.01
    assert capsys.readouterr().err == ""
    watch.check(10.5, task_id=1, step=40)
    assert "grew from 0.01 to 10.5 in task 1 by step 40" in capsys.readouterr().err
    watch.check(5000.0, task_id=2, step=50, first_loss=5.0)  # a new task: a new reference
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_non_finite_loss_stops_or_warns(capsys, value):
    with pytest.raises(TrainingDiverged) as caught:
        LossWatch().check(value, task_id=3, step=70)
    assert (caught.value.task_id, caught.value.step) == (3, 70)
    assert f"became {value} in task 3 by step 70" in str(caught.value)
    watch = LossWatch(stop_on_nonfinite=False)
    watch.check(value, task_id=3, step=70)
    watch.check(value, task_id=3, step=80)
    err = capsys.readouterr().err
    assert err.count("hatcl: warning: the training loss became") == 1


def test_a_diverged_run_stops_with_one_paragraph_and_exit_1(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_command([*QUICK, "optimizer.lr=1e30", f"output_dir={run}"]) == 1
    err = capsys.readouterr().err
    assert "the training loss became nan in task 1 by step" in err
    assert "trainer.stop_on_nonfinite" in err and "Traceback" not in err
    assert not (run / "metrics.json").exists()


def test_an_exploding_run_warns_and_finishes(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_command([*QUICK, "optimizer.lr=1e6", f"output_dir={run}"]) == 0
    err = capsys.readouterr().err
    assert err.count("hatcl: warning: the training loss grew from") == 1
    assert "in task 1 by step 10" in err and (run / "metrics.json").is_file()
