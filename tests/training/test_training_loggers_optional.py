"""``trainer.loggers`` with wandb (offline) and mlflow (a local store): the same metric names as
the CSV logger; refused up front when the package is missing."""

from __future__ import annotations

import csv
import importlib.util

import pytest

from hatcl.cli import main
from hatcl.cli_run import run_command

TINY = [
    "data.num_tasks=2",
    "data.train_subset=200",
    "data.test_subset=200",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.num_threads=1",
    "trainer.figures=false",
    "trainer.report=false",
    "trainer.checkpoints=false",
    "trainer.log_every_n_steps=2",
]


@pytest.mark.slow
def test_wandb_and_mlflow_get_the_csv_loggers_metric_names(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    pytest.importorskip("mlflow")
    from wandb.sdk.wandb_run import Run

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    sent: set[str] = set()
    original = Run.log

    def spy(self, data, *args, **kwargs):  # what wandb itself is handed
        sent.update(data)
        return original(self, data, *args, **kwargs)

    monkeypatch.setattr(Run, "log", spy)
    run = tmp_path / "run"
    assert run_command([*TINY, "trainer.loggers=[csv,wandb,mlflow]", f"output_dir={run}"]) == 0

    with (run / "logs" / "csv" / "version_0" / "metrics.csv").open(newline="") as handle:
        csv_names = set(next(csv.reader(handle))) - {"step"}
    assert {"train_loss", "average_accuracy", "test_accuracy/task_2"} <= csv_names
    assert sent - {"trainer/global_step"} == csv_names
    assert list((run / "logs" / "wandb").glob("offline-run-*/run-*.wandb"))

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(run / "logs" / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("hatcl")
    (record,) = client.search_runs([experiment.experiment_id])
    assert set(record.data.metrics) == csv_names
    assert record.info.run_name == "run"
    assert not (run / "report.html").exists()  # trainer.report=false


@pytest.mark.parametrize("name", ["wandb", "mlflow"])
def test_a_missing_logger_package_is_refused_before_any_work(tmp_path, monkeypatch, capsys, name):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda module, *a: None if module == name else real(module, *a)
    )
    run = tmp_path / "run"
    assert main(["run", *TINY, f"trainer.loggers=[csv,{name}]", f"output_dir={run}"]) == 2
    assert f"trainer.loggers entry {name!r} needs the package {name}" in capsys.readouterr().err
    assert not run.exists()
