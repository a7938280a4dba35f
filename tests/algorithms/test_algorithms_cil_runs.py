"""Replay and WSN runs without a task id at test time: ER, DER, DER++ under ``head=cil``; WSN
under ``cil`` (its task-aware matrix is its ``til`` matrix, TAg <= TAw) and ``dil``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hatcl.cli_run import run_command

QUICK = [
    "data.num_tasks=3",  # 4, 3 and 3 classes: blocks of unequal width
    "backbone.hidden_dims=[32,32]",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "trainer.num_threads=1",
    "trainer.loggers=[]",
    "trainer.figures=false",
    "trainer.checkpoints=false",
]


def _run(folder: Path, *overrides: str, data: str = "split_digits") -> dict:
    assert run_command([f"data={data}", *QUICK, *overrides, f"output_dir={folder}"]) == 0
    return json.loads((folder / "metrics.json").read_text())


def _bounded(metrics: dict) -> None:
    """TAg <= TAw and TAg <= task-id accuracy, entry by entry."""
    tag, taw = metrics["accuracy_matrix"], metrics["accuracy_matrix_task_aware"]
    task_id = metrics["task_id_accuracy"]
    assert [len(row) for row in tag] == [len(row) for row in taw] == [1, 2, 3]
    for t, row in enumerate(tag):
        for tau, value in enumerate(row):
            assert value <= taw[t][tau] + 1e-12
            assert value <= task_id[t][tau] + 1e-12


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["er", "der", "derpp"])
def test_replay_runs_under_cil_with_global_labels_in_its_memory(tmp_path, algorithm):
    run = tmp_path / "run"
    metrics = _run(run, f"algorithm={algorithm}", "algorithm.buffer_size=60", "head=cil")
    _bounded(metrics)
    tasks = json.loads((run / "tasks.json").read_text())["tasks"]
    assert set(tasks[-1]["memory"]["per_task"]) == {"1", "2", "3"}
    # replayed task-1 samples keep task 1's classes in the output space: it is not forgotten
    assert metrics["accuracy_matrix"][-1][0] > 0.2


@pytest.fixture(scope="module")
def wsn_runs(tmp_path_factory) -> dict[str, dict]:
    base = tmp_path_factory.mktemp("wsn")
    return {head: _run(base / head, "algorithm=wsn", f"head={head}") for head in ("til", "cil")}


@pytest.mark.slow
def test_wsn_under_cil_has_its_til_matrix_as_task_aware_matrix(wsn_runs):
    cil, til = wsn_runs["cil"], wsn_runs["til"]
    assert cil["accuracy_matrix_task_aware"] == til["accuracy_matrix"]
    assert cil["bwt_task_aware"] == til["bwt"] == 0.0
    _bounded(cil)
    # the task is predicted: a wrong task makes some answers wrong that TAw counts right
    assert cil["average_accuracy"] < cil["average_accuracy_task_aware"]


@pytest.mark.slow
def test_wsn_under_dil_predicts_the_task_and_keeps_task_aware_bwt_zero(tmp_path):
    metrics = _run(tmp_path / "dil", "algorithm=wsn", "head=dil", data="permuted_digits")
    assert len(metrics["task_id_accuracy"]) == 3
    assert metrics["bwt_task_aware"] == 0.0
    assert metrics["accuracy_matrix"] != metrics["accuracy_matrix_task_aware"]
