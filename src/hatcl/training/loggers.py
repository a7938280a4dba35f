"""Lightning loggers for a whole run: one step axis across tasks, fed from the loop's records."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import Logger

from hatcl.training.registries import LOGGERS

_POSITION_KEYS = ("task", "epoch", "step")


def build_loggers(names: Sequence[str], *, run_dir: Path) -> list[Logger]:
    """One Lightning logger per name under ``<run_dir>/logs/<name>/version_N``.

    A resumed run gets the next version, so nothing already logged is overwritten.
    """
    loggers = []
    for name in names:
        logger_class = LOGGERS.resolve(name, parameter="trainer.loggers")
        try:
            loggers.append(logger_class(**logger_options(name, run_dir=run_dir)))
        except ModuleNotFoundError as error:
            raise ValueError(
                f"trainer.loggers entry {name!r} needs a package that is not installed "
                f"({error.name}); install it or remove {name!r} from trainer.loggers"
            ) from None
    return loggers


def logger_options(name: str, *, run_dir: Path) -> dict[str, Any]:
    """The keyword options of logger ``name``: every logger writes below ``<run_dir>/logs``.

    ``wandb`` logs to ``logs/wandb`` (project ``hatcl``, run named after the folder; offline with
    ``WANDB_MODE=offline``), ``mlflow`` to the local file store ``logs/mlruns`` (experiment
    ``hatcl``; MLflow 3 keeps that store only with ``MLFLOW_ALLOW_FILE_STORE=true``, which is set
    when unset) or to ``MLFLOW_TRACKING_URI`` when given, the others to ``logs/<name>/version_N``.
    """
    logs = run_dir / "logs"
    if name == "wandb":
        return {"save_dir": str(logs), "project": "hatcl", "name": run_dir.name}
    if name == "mlflow":
        store = logs / "mlruns"
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        return {
            "experiment_name": "hatcl",
            "run_name": run_dir.name,
            "tracking_uri": os.environ.get("MLFLOW_TRACKING_URI") or store.absolute().as_uri(),
            "save_dir": str(store),
        }
    return {"save_dir": str(logs), "name": name}


class RunLogger(L.Callback):
    """Send the module's step and validation records to the run's loggers.

    Each task is trained by a new Trainer whose step count restarts at 0; this callback keeps the
    run-wide step reached and hands it to the module at the start of each task, so that the
    module's records (``training_curves.csv``) and the loggers count steps on one axis, per run:
    the curves of consecutive tasks follow each other instead of overlapping.

    Args:
        loggers: the run's loggers (the same objects for every task).
        step: the run-wide step reached so far (non-zero when a run is resumed).
        sent: how many of the module's records were already logged.
    """

    def __init__(self, loggers: Sequence[Logger], *, step: int = 0, sent: int = 0) -> None:
        super().__init__()
        self.loggers = list(loggers)
        self.step = step
        self.sent = sent

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.run_step_offset = self.step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self._flush(pl_module.curves)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(pl_module.curves)
        self.step += getattr(pl_module, "task_steps_done", trainer.global_step)

    def log_hyperparameters(self, params: Mapping[str, Any]) -> None:
        """Record the run's configuration with every logger."""
        for logger in self.loggers:
            logger.log_hyperparams(dict(params))

    def log_test(self, *, task_id: int, row: Sequence[float]) -> None:
        """Test accuracy on every seen task and their mean, at the end of ``task_id``."""
        metrics: dict[str, float] = {f"test_accuracy/task_{tau}": a for tau, a in enumerate(row, 1)}
        metrics["average_accuracy"] = sum(row) / len(row)
        metrics["task"] = float(task_id)
        self._log(metrics, step=self.step)
        for logger in self.loggers:
            logger.save()

    def finalize(self) -> None:
        """Flush and close every logger."""
        for logger in self.loggers:
            logger.finalize("success")

    def _flush(self, records: Sequence[Mapping[str, Any]]) -> None:
        for record in records[self.sent :]:
            values = {
                key: float(value)
                for key, value in record.items()
                if key not in _POSITION_KEYS and value is not None
            }
            values["task"] = float(record["task"])
            self._log(values, step=int(record["step"]))
        self.sent = len(records)

    def _log(self, metrics: dict[str, float], *, step: int) -> None:
        for logger in self.loggers:
            logger.log_metrics(metrics, step=step)
