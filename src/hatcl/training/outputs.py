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

_LOGGER = logging.getLogger("hatcl")
_QUIET_WARNINGS = (
    ".*does not have many workers.*",
    ".*`IterableDataset` has `__len__`.*",
    ".*Total length of .* across ranks is zero.*",
    ".*when logging on epoch level in distributed.*",
    ".*isinstance.treespec, LeafSpec.*",
)


def run_metrics(matrix: list[list[float]], summaries: list[dict]) -> dict:
    """The run's metrics; deterministic (wall time goes to ``timing.json``).

    Without a task id at test time (``head=cil``/``dil``) ``accuracy_matrix`` is task-agnostic
    and the task summaries' rows add the task-aware matrix with its metrics and the task-id
    accuracy matrix (spec/class-incremental.md).
    """
    metrics = summary(matrix)
    metrics.update(task_agnostic_metrics(summaries))
    capacity = summaries[-1].get("capacity") if summaries else None
    if capacity is not None:
        metrics["final_capacity"] = capacity
    return metrics


def task_agnostic_metrics(summaries: list[dict]) -> dict:
    """``accuracy_matrix_task_aware`` and its metrics (``*_task_aware``), ``task_id_accuracy``."""
    if not summaries or "accuracy_task_aware" not in summaries[0]:
        return {}
    aware = summary([list(s["accuracy_task_aware"]) for s in summaries])
    metrics = {
        "accuracy_matrix_task_aware": aware.pop("accuracy_matrix"),
        **{f"{key}_task_aware": value for key, value in aware.items()},
    }
    if "task_id_accuracy" in summaries[0]:
        metrics["task_id_accuracy"] = [list(s["task_id_accuracy"]) for s in summaries]
        last = metrics["task_id_accuracy"][-1]
        metrics["average_task_id_accuracy"] = sum(last) / len(last)
    return metrics


def write_outputs(
    folder: Path, *, metrics: dict, summaries: list[dict], curves: list[dict]
) -> None:
    """``metrics.json``, ``accuracy_matrix.csv``, ``tasks.json``, ``training_curves.csv``."""
    write_json(folder / "metrics.json", metrics)
    write_accuracy_matrix(folder / "accuracy_matrix.csv", metrics["accuracy_matrix"])
    write_json(folder / "tasks.json", {"tasks": summaries})
    write_curves(folder / "training_curves.csv", curves)
    keys = ("average_accuracy", "bwt", "forgetting", "fwt", "average_accuracy_task_aware")
    shown = {key: metrics.get(key) for key in keys if key in metrics}
    if "final_capacity" in metrics:
        shown["final_capacity"] = metrics["final_capacity"]
    _LOGGER.info(
        "finished: %s",
        ", ".join(f"{k} {'n/a' if v is None else f'{v:.4f}'}" for k, v in shown.items()),
    )


def write_figures(config: ExperimentConfig, folder: Path) -> None:
    """The run's PNG figures, if ``trainer.figures`` (matplotlib is imported only then)."""
    if config.trainer.figures:
        from hatcl.reporting.figures import write_run_figures

        write_run_figures(folder)


def write_report(config: ExperimentConfig, folder: Path) -> None:
    """The run's HTML report ``report.html``, if ``trainer.report``."""
    if config.trainer.report:
        from hatcl.reporting.report import write_report as write_html_report

        write_html_report(folder)


def write_run_files(
    config: ExperimentConfig,
    folder: Path,
    *,
    metrics: dict,
    progress,
    curves: list[dict],
    task_seconds: list[float],
    seconds: float,
) -> None:
    """Everything a finished run writes: metrics, tables, curves, timing, figures, report."""
    write_outputs(folder, metrics=metrics, summaries=progress.summaries, curves=curves)
    write_json(
        folder / "timing.json",
        timing(seconds=seconds, task_seconds=task_seconds, completed=progress.completed),
    )
    write_figures(config, folder)
    write_report(config, folder)


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
    resume_step: int | None = None,
) -> RunLogger:
    """One set of Lightning loggers for the whole run (none on processes other than rank 0).

    ``resume_step``: a resumed run's step reached (its CSV log continues up to there).
    """
    loggers = (
        build_loggers(config.trainer.loggers, run_dir=folder, resume_step=resume_step)
        if rank == 0
        else []
    )
    logger = RunLogger(loggers, step=log_step, sent=curves_sent)
    _LOGGER.info(
        "run %s: %s on %s/%s, %d tasks, seed %d; resolved configuration:\n%s",
        folder,
        config.algorithm.name,
        config.data.source,
        config.data.scenario,
        config.data.num_tasks,
        config.seed,
        text.rstrip(),
    )
    if loggers:
        import yaml

        logger.log_hyperparameters(yaml.safe_load(text) or {})
    return logger


@contextmanager
def run_logging(folder: Path, *, enabled: bool = True):
    """Send hatcl's and Lightning's log records, and Python warnings, to ``run.log``.

    ``run.log`` gets the configuration, one line per task, the final metrics, every warning
    (also still shown on the console) and the traceback of an exception that ends the run.
    """
    handler: logging.Handler = (
        logging.FileHandler(folder / "run.log", encoding="utf-8")
        if enabled
        else logging.NullHandler()
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(name) for name in ("hatcl", "lightning.pytorch", "lightning")]
    levels = [logger.level for logger in loggers]
    disabled = [logger.disabled for logger in loggers]
    for logger in loggers:
        # a logging configuration with disable_existing_loggers (Hydra's, once per sweep job)
        # switches off loggers that exist already: each run's run.log would stay empty
        logger.disabled = False
        logger.addHandler(handler)
    _LOGGER.setLevel(logging.INFO)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        for message in _QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        warnings.showwarning = _tee_warning(warnings.showwarning)
        try:
            yield
        except BaseException as error:
            _log_end(error)
            raise
        finally:
            for logger, level, off in zip(loggers, levels, disabled):
                logger.removeHandler(handler)
                logger.setLevel(level)
                logger.disabled = off
            handler.close()


def _tee_warning(show):
    """``warnings.showwarning`` that also records the warning in the run's log."""

    def show_and_log(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        _LOGGER.warning("%s", warnings.formatwarning(message, category, filename, lineno).strip())
        show(message, category, filename, lineno, file, line)

    return show_and_log


def _log_end(error: BaseException) -> None:
    """An interruption in one line; anything else with its traceback."""
    from hatcl.training.interrupt import RunInterrupted

    if isinstance(error, (RunInterrupted, KeyboardInterrupt)):
        _LOGGER.warning("stopped: %s", error or type(error).__name__)
    else:
        _LOGGER.error("the run failed: %s: %s", type(error).__name__, error, exc_info=error)
