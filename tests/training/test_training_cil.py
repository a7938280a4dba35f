"""Class-incremental runs end to end: the three matrices, their invariants, TAw == TIL, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hatcl.cli_run import run_command
from hatcl.training.reevaluate import reevaluate
from signal_at import SignalAt

QUICK = [
    "data=split_digits",
    "data.num_tasks=3",  # 4, 3 and 3 classes: blocks of unequal width
    "backbone.hidden_dims=[32,32]",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "trainer.num_threads=1",
    "trainer.loggers=[]",
    "trainer.figures=false",
    "trainer.checkpoints=false",
]
ALGORITHMS = ["finetuning", "fix", "joint", "ewc", "lwf", "hat", "adahat", "fgadahat"]
ALGORITHMS += ["independent"]


def _run(folder: Path, *overrides: str) -> dict:
    assert run_command([*QUICK, *overrides, f"output_dir={folder}"]) == 0
    return json.loads((folder / "metrics.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict]:
    base = tmp_path_factory.mktemp("cil")
    return {name: _run(base / name, f"algorithm={name}", "head=cil") for name in ALGORITHMS}


@pytest.mark.slow
@pytest.mark.parametrize("name", ALGORITHMS)
def test_every_algorithm_writes_both_matrices_and_tag_is_bounded(runs, name):
    metrics = runs[name]
    tag, taw = metrics["accuracy_matrix"], metrics["accuracy_matrix_task_aware"]
    task_id = metrics["task_id_accuracy"]
    assert [len(row) for row in tag] == [len(row) for row in taw] == [1, 2, 3]
    for t in range(3):
        for tau in range(t + 1):
            assert tag[t][tau] <= taw[t][tau] + 1e-12
            assert tag[t][tau] <= task_id[t][tau] + 1e-12
    aa = sum(taw[-1]) / 3
    assert metrics["average_accuracy_task_aware"] == pytest.approx(aa)
    for key in ("bwt_task_aware", "forgetting_task_aware", "fwt_task_aware"):
        assert key in metrics


@pytest.mark.slow
def test_finetuning_under_cil_forgets_task_1(runs):
    assert runs["finetuning"]["accuracy_matrix"][-1][0] < 0.1  # textbook catastrophic forgetting
    assert runs["joint"]["accuracy_matrix"][-1][0] > 0.5  # the union keeps it


@pytest.mark.slow
def test_the_task_aware_matrix_of_hat_under_cil_is_the_til_matrix(runs, tmp_path):
    til = _run(tmp_path / "til", "algorithm=hat", "head=til")
    assert runs["hat"]["accuracy_matrix_task_aware"] == til["accuracy_matrix"]
    assert "accuracy_matrix_task_aware" not in til  # a til run is unchanged


def test_a_calibration_without_validation_samples_is_refused_before_any_work(tmp_path, capsys):
    folder = tmp_path / "refused"
    overrides = ["head=cil", "cil.calibration=affine", "data.val_fraction=0"]
    assert run_command([*QUICK, *overrides, f"output_dir={folder}"]) == 2
    assert "data.val_fraction=0" in capsys.readouterr().err
    assert not folder.exists()


def test_cil_with_a_scenario_whose_tasks_share_classes_is_refused_before_any_work(
    tmp_path, capsys
):
    folder = tmp_path / "refused"
    overrides = [o for o in QUICK if not o.startswith("data")]
    code = run_command([*overrides, "data=permuted_digits", "head=cil", f"output_dir={folder}"])
    assert code == 2
    assert "use head=dil" in capsys.readouterr().err
    assert not folder.exists()


@pytest.mark.slow
def test_hat_under_dil_predicts_the_task_and_writes_both_matrices(tmp_path):
    overrides = [o for o in QUICK if not o.startswith("data")]
    folder = tmp_path / "dil"
    dil = ["data=permuted_digits", "data.num_tasks=3", "algorithm=hat", "head=dil"]
    assert run_command([*overrides, *dil, f"output_dir={folder}"]) == 0
    metrics = json.loads((folder / "metrics.json").read_text())
    assert len(metrics["task_id_accuracy"]) == 3
    assert metrics["accuracy_matrix"] != metrics["accuracy_matrix_task_aware"]


@pytest.mark.slow
def test_resume_mid_task_under_cil_is_byte_identical(tmp_path):
    resumable = [
        *[o for o in QUICK if o != "trainer.checkpoints=false"],
        "algorithm=hat",
        "head=cil",
        "cil.calibration=affine",
        "cil.task_score=energy",
    ]
    reference = tmp_path / "reference"
    assert run_command([*resumable, f"output_dir={reference}"]) == 0
    run = tmp_path / "signalled"
    callback = SignalAt(task_id=2, step=7)
    assert run_command([*resumable, f"output_dir={run}"], callbacks=[callback]) == 143
    assert not (run / "metrics.json").exists()
    assert run_command([*resumable, f"resume={run}"]) == 0
    for name in ("metrics.json", "tasks.json", "accuracy_matrix.csv"):
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name
    tasks = json.loads((run / "tasks.json").read_text())["tasks"]
    assert len(tasks[-1]["calibration"]["weight"]) == 3
    # re-evaluated from the task checkpoints, the run's own score and calibration give its numbers
    metrics = json.loads((run / "metrics.json").read_text())
    again = reevaluate(run, combinations=[("energy", "affine")])[("energy", "affine")]
    for key in ("accuracy_matrix", "accuracy_matrix_task_aware", "task_id_accuracy"):
        assert again[key] == metrics[key], key
