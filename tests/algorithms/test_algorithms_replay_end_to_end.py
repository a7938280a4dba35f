"""ER, DER, DER++ and WSN end to end: til and dil runs, the memory in tasks.json, a signalled
run resumed mid-task equal to the uninterrupted one, WSN's BWT exactly 0 (also on a network
given with backbone=custom)."""

from __future__ import annotations

import json
import signal
import sys
import textwrap

import pytest

from hatcl.cli_run import run_command
from signal_at import SignalAt

QUIET = ["trainer.enable_progress_bar=false", "trainer.figures=false", "trainer.num_threads=1"]
TINY = ["data=split_digits", "data.num_tasks=2", "trainer.max_epochs=1", *QUIET]


def _read(run, name):
    return json.loads((run / name).read_text())


@pytest.mark.parametrize("head", ["til", "dil"])
@pytest.mark.parametrize("algorithm", ["er", "der", "derpp"])
def test_replay_runs_and_reports_its_memory(tmp_path, algorithm, head):
    run = tmp_path / "run"
    overrides = [f"algorithm={algorithm}", "algorithm.buffer_size=50", f"head={head}", *TINY]
    assert run_command([*overrides, f"output_dir={run}"]) == 0
    metrics = _read(run, "metrics.json")
    assert all(0.5 < a <= 1.0 for a in metrics["accuracy_matrix"][-1])
    tasks = _read(run, "tasks.json")["tasks"]
    first, second = tasks[0]["memory"], tasks[1]["memory"]
    assert first["fill"] == 50 and first["per_task"] == {"1": 50}
    assert second["seen"] > first["seen"] >= 50
    assert sum(second["per_task"].values()) == 50 and set(second["per_task"]) == {"1", "2"}


@pytest.mark.slow
def test_replay_with_augmentation_resumed_mid_task_equals_uninterrupted(tmp_path):
    overrides = [
        "algorithm=derpp",
        "algorithm.buffer_size=40",
        "data.augment=[crop,flip]",
        "data.crop_padding=1",
        *TINY,
        "trainer.max_epochs=2",
    ]
    reference, run = tmp_path / "reference", tmp_path / "signalled"
    assert run_command([*overrides, f"output_dir={reference}"]) == 0
    code = run_command([*overrides, f"output_dir={run}"], callbacks=[SignalAt(task_id=2, step=7)])
    assert code == 128 + signal.SIGTERM
    assert run_command([*overrides, f"resume={run}"]) == 0
    for name in ("metrics.json", "tasks.json", "accuracy_matrix.csv", "training_curves.csv"):
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name


@pytest.mark.slow
def test_wsn_on_split_digits_keeps_bwt_exactly_zero(tmp_path):
    run = tmp_path / "wsn"
    overrides = ["algorithm=wsn", "data=split_digits", "seed=1", "trainer.max_epochs=5", *QUIET]
    assert run_command([*overrides, f"output_dir={run}"]) == 0
    metrics = _read(run, "metrics.json")
    assert metrics["bwt"] == 0.0
    assert metrics["average_accuracy"] > 0.8
    matrix = metrics["accuracy_matrix"]
    assert all(row[j] == matrix[j][j] for row in matrix for j in range(len(row)))
    summary = _read(run, "tasks.json")["tasks"][-1]["wsn"]
    assert summary["mask_fraction"] == pytest.approx(0.5, abs=0.01)
    assert 0.5 <= summary["union_fraction"] <= 1.0


@pytest.mark.slow
def test_wsn_on_a_custom_network_keeps_bwt_exactly_zero(tmp_path, monkeypatch):
    package = tmp_path / "wsnnets"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(
        textwrap.dedent(
            """
            import math
            from torch import nn

            def make_net(input_shape, width=64):
                return nn.Sequential(
                    nn.Flatten(), nn.Linear(math.prod(input_shape), width), nn.ReLU(),
                    nn.Linear(width, width), nn.ReLU(),
                )
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "wsnnets", raising=False)
    run = tmp_path / "run"
    overrides = [
        "algorithm=wsn",
        "backbone=custom",
        "backbone.target=wsnnets.nets:make_net",
        "data=split_digits",
        "seed=1",
        "trainer.max_epochs=5",
        *QUIET,
    ]
    assert run_command([*overrides, f"output_dir={run}"]) == 0
    metrics = _read(run, "metrics.json")
    assert metrics["bwt"] == 0.0 and metrics["average_accuracy"] > 0.8
