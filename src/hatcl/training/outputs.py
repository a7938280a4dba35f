"""What a run leaves behind: metrics, per-task summaries, curves, figures, timing, the log."""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from pathlib import Path

from hatcl.metrics.continual import summary
from hatcl.reporting.run_folder import write_accuracy_matrix, write_curves, write_json
from hatcl.training.experiment import ExperimentConfig
from hatcl.training.loggers import RunLogger, build_loggers

_QUIET_WARNINGS = (
    ".*does not have many workers.*",
    ".*`IterableDataset` has `__len__`.*",
    ".*Total length of .* across ranks is zero.*",
    ".*when logging on epoch level in distributed.*",
    ".*isinstance.treespec, LeafSpec.*",
)


def run_metrics(matrix: list[list[float]], summaries: list[dict]) -> dict:
    """The run's metrics; deterministic (wall time goes to ``timing.json``)."""
    metrics = summary(matrix)
    capacity = summaries[-1].get("capacity") if summaries else None
    if capacity is not None:
        metrics["final_capacity"] = capacity
    return metrics


def write_outputs(
    folder: Path, *, metrics: dict, summaries: list[dict], curves: list[dict]
) -> None:
    """``metrics.json``, ``accuracy_matrix.csv``, ``tasks.json``, ``training_curves.csv``."""
    write_json(folder / "metrics.json", metrics)
    write_accuracy_matrix(folder / "accuracy_matrix.csv", metrics["accuracy_matrix"])
    write_json(folder / "tasks.json", {"tasks": summaries})
    write_curves(folder / "training_curves.csv", curves)


def write_figures(config: ExperimentConfig, folder: Path) -> None:
    """The run's PNG figures, if ``trainer.figures`` (matplotlib is imported only then)."""
    if config.trainer.figures:
        from hatcl.reporting.figures import write_run_figures

        write_run_figures(folder)


def timing(*, seconds: float, task_seconds: list[float], completed: int) -> dict:
    """``timing.json``: wall time of this process and of each task it trained."""
    return {
        "wall_time_seconds": round(seconds, 3),
        "task_seconds_this_process": task_seconds,
        "resumed_after_task": completed - len(task_seconds),
    }


def run_logger(
    config: ExperimentConfig,
    folder: Path,
    *,
    log_step: int,
    curves_sent: int,
    text: str,
    rank: int,
) -> RunLogger:
    """One set of Lightning loggers for the whole run (none on processes other than rank 0)."""
    loggers = build_loggers(config.trainer.loggers, run_dir=folder) if rank == 0 else []
    logger = RunLogger(loggers, step=log_step, sent=curves_sent)
    if loggers:
        import yaml

        logger.log_hyperparameters(yaml.safe_load(text) or {})
    return logger


@contextmanager
def run_logging(folder: Path, *, enabled: bool = True):
    """Send hatcl's and Lightning's log records to ``run.log``; keep the console quiet."""
    handler: logging.Handler = (
        logging.FileHandler(folder / "run.log", encoding="utf-8")
        if enabled
        else logging.NullHandler()
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(name) for name in ("hatcl", "lightning.pytorch", "lightning")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        for message in _QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.removeHandler(handler)
                logger.setLevel(level)
            handler.close()
