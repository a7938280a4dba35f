"""Every baseline runs end to end on the tiny default; FWT against an independent reference."""

from __future__ import annotations

import json

import pytest

from hatcl.algorithms.registries import ALGORITHMS
from hatcl.cli_run import compose_config, run_from_config

TINY = ["trainer.max_epochs=1", "data.num_tasks=2", "trainer.enable_progress_bar=false"]
BASELINES = ("fix", "joint", "ewc", "lwf")


def _run(tmp_path, name: str, algorithm: str, *overrides: str):
    cfg = compose_config(
        [f"algorithm={algorithm}", *TINY, f"output_dir={tmp_path / name}", *overrides]
    )
    return run_from_config(cfg)


@pytest.fixture(scope="module")
def independent_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("reference"), "independent", "independent")


def test_baselines_are_registered():
    assert {"fix", "independent", "joint", "ewc", "lwf"} <= set(ALGORITHMS.names())


@pytest.mark.parametrize("algorithm", BASELINES)
def test_baseline_runs_end_to_end(tmp_path, algorithm):
    result = _run(tmp_path, algorithm, algorithm)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    matrix = metrics["accuracy_matrix"]
    assert [len(row) for row in matrix] == [1, 2]
    assert all(0.1 < a <= 1.0 for row in matrix for a in row)  # far above 1/10 chance
    assert metrics["bwt"] == pytest.approx(matrix[1][0] - matrix[0][0])
    assert metrics["fwt"] is None
    curves = (result.run_dir / "training_curves.csv").read_text()
    assert "train_loss" in curves


def test_independent_has_exactly_zero_bwt(independent_run):
    matrix = independent_run.metrics["accuracy_matrix"]
    assert matrix[1][0] == matrix[0][0]
    assert independent_run.metrics["bwt"] == 0.0
    assert independent_run.metrics["forgetting"] == 0.0


def test_fwt_from_a_reference_run_folder(tmp_path, independent_run):
    result = _run(tmp_path, "lwf", "lwf", f"reference_run={independent_run.run_dir}")
    b = independent_run.metrics["accuracy_matrix"]
    a = result.metrics["accuracy_matrix"]
    assert result.metrics["fwt"] == pytest.approx(a[1][1] - b[1][1], abs=1e-12)
    saved = json.loads((result.run_dir / "metrics.json").read_text())
    assert saved["fwt"] == pytest.approx(result.metrics["fwt"])


def test_fwt_auto_trains_the_reference_in_a_subfolder(tmp_path, independent_run):
    result = _run(tmp_path, "fix", "fix", "reference_run=auto")
    reference = json.loads((result.run_dir / "reference" / "metrics.json").read_text())
    b = reference["accuracy_matrix"]
    a = result.metrics["accuracy_matrix"]
    assert result.metrics["fwt"] == pytest.approx(a[1][1] - b[1][1], abs=1e-12)
    # the on-demand reference is the same run as the one made by hand
    assert b == independent_run.metrics["accuracy_matrix"]
    assert "name: independent" in (result.run_dir / "reference" / "config.yaml").read_text()


def test_reference_run_must_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="reference_run"):
        _run(tmp_path, "x", "fix", f"reference_run={tmp_path / 'missing'}")


def test_reference_run_must_be_independent_on_the_same_data(tmp_path, independent_run):
    other = _run(tmp_path, "joint", "joint")
    with pytest.raises(ValueError, match="independent"):
        _run(tmp_path, "x", "fix", f"reference_run={other.run_dir}")
    with pytest.raises(ValueError, match="same data and seed"):
        _run(tmp_path, "y", "fix", "seed=2", f"reference_run={independent_run.run_dir}")
