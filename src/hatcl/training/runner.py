"""The task-sequence runner: train each task, test every seen task, write the run folder."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from rich.console import Console

from hatcl.data.base import ContinualData, TaskData, build_continual_data
from hatcl.metrics.continual import summary
from hatcl.reporting.console import summary_table, task_line
from hatcl.reporting.run_folder import (
    prepare_run_dir,
    write_accuracy_matrix,
    write_curves,
    write_json,
    write_text,
)
from hatcl.training.batches import TensorBatches
from hatcl.training.experiment import (
    ExperimentConfig,
    build_algorithm,
    build_model,
    build_module,
)
from hatcl.training.module import ContinualModule
from hatcl.training.reference import forward_transfer_or_none, reference_accuracies

_LOGGER = logging.getLogger("hatcl")


@dataclass(frozen=True)
class RunResult:
    """What a finished run produced (also written to ``run_dir``)."""

    run_dir: Path
    metrics: dict
    module: ContinualModule
    data: ContinualData


def run_experiment(
    config: ExperimentConfig,
    *,
    run_dir: str | Path,
    resolved_config: str | None = None,
    console: Console | None = None,
) -> RunResult:
    """Train the configured algorithm on every task in order and write the run folder.

    Args:
        config: the typed experiment configuration.
        run_dir: the run folder (created; refused if it already holds a run).
        resolved_config: the YAML text of the resolved configuration, saved as ``config.yaml``.
        console: where progress and the summary are printed (default: stdout).
    """
    console = console or Console()
    folder = prepare_run_dir(run_dir)
    write_text(folder / "config.yaml", resolved_config or repr(config))
    reference = reference_accuracies(config, run_dir=folder, console=console)
    with _run_logging(folder):
        _set_threads(config.trainer.num_threads)
        L.seed_everything(config.seed, verbose=False)
        started = time.perf_counter()
        data = build_continual_data(config.data, seed=config.seed)
        algorithm = build_algorithm(config.algorithm)
        model = build_model(config, data=data, algorithm=algorithm)
        module = build_module(config, model=model, algorithm=algorithm)
        matrix, task_summaries = _run_tasks(config, module, data, console)
        metrics = _metrics(matrix, task_summaries, seconds=time.perf_counter() - started)
        metrics["fwt"] = forward_transfer_or_none(matrix, reference)
        _write_outputs(folder, metrics, task_summaries, module)
    title = f"{config.algorithm.name} on {data.source}/{data.scenario} (seed {config.seed})"
    summary_table(console, title=title, metrics=metrics, run_dir=str(folder))
    return RunResult(run_dir=folder, metrics=metrics, module=module, data=data)


def _run_tasks(
    config: ExperimentConfig, module: ContinualModule, data: ContinualData, console: Console
) -> tuple[list[list[float]], list[dict]]:
    matrix: list[list[float]] = []
    summaries: list[dict] = []
    for task in data.tasks:
        train_task(module, task, config=config, seen_tasks=data.tasks[: task.task_id])
        row = test_tasks(module, data.tasks[: task.task_id], config=config)
        matrix.append(row)
        summaries.append(
            {
                "task": task.task_id,
                **module.algorithm.task_summary(task_id=task.task_id, model=module.model),
            }
        )
        task_line(console, task_id=task.task_id, num_tasks=len(data.tasks), row=row)
    return matrix, summaries


def train_task(
    module: ContinualModule,
    task: TaskData,
    *,
    config: ExperimentConfig,
    seen_tasks: Sequence[TaskData] | None = None,
) -> None:
    """Set up and train one task, then let the algorithm consolidate it.

    ``seen_tasks`` (tasks 1..current, default just ``task``) is offered to the algorithm's
    ``training_split`` (e.g. joint training trains on their union).
    """
    model, algorithm = module.model, module.algorithm
    module.task_id = task.task_id
    model.setup_task(task_id=task.task_id, num_classes=task.num_classes)
    algorithm.on_task_start(task_id=task.task_id, model=model)
    module.train()
    train = _training_batches(module, task, seen_tasks=seen_tasks or (task,), config=config)
    val = _eval_batches(task.val, config) if len(task.val.y) else None
    make_trainer(config, max_epochs=config.trainer.max_epochs).fit(
        module, train_dataloaders=train, val_dataloaders=val
    )
    algorithm.on_task_end(task_id=task.task_id, model=model, task_data=task)


def _training_batches(
    module: ContinualModule,
    task: TaskData,
    *,
    seen_tasks: Sequence[TaskData],
    config: ExperimentConfig,
) -> TensorBatches:
    split = module.algorithm.training_split(task_data=task, seen_tasks=tuple(seen_tasks))
    generator = torch.Generator().manual_seed(config.seed * 10_007 + task.task_id)
    return TensorBatches(
        split.x,
        split.y,
        task_ids=split.task_ids,
        batch_size=config.trainer.batch_size,
        shuffle=True,
        generator=generator,
    )


def test_tasks(
    module: ContinualModule, tasks: Sequence[TaskData], *, config: ExperimentConfig
) -> list[float]:
    """Test accuracy (correct / samples) on each of ``tasks`` with its own mask and head."""
    module.test_task_ids = tuple(task.task_id for task in tasks)
    module.test_accuracy = {}
    loaders = [_eval_batches(task.test, config) for task in tasks]
    make_trainer(config, max_epochs=1, progress=False).test(
        module, dataloaders=loaders, verbose=False
    )
    return [module.test_accuracy[task.task_id].value() for task in tasks]


def make_trainer(config: ExperimentConfig, *, max_epochs: int, progress: bool = True) -> L.Trainer:
    """A Lightning trainer for one task (no checkpointing or logger of Lightning's own)."""
    trainer = config.trainer
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator=trainer.accelerator,
        devices=trainer.devices,
        strategy=trainer.strategy,
        precision=trainer.precision,
        deterministic=trainer.deterministic,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=trainer.enable_progress_bar and progress,
        num_sanity_val_steps=0,
        log_every_n_steps=trainer.log_every_n_steps,
    )


def _eval_batches(split, config: ExperimentConfig) -> TensorBatches:
    return TensorBatches(split.x, split.y, batch_size=config.trainer.eval_batch_size)


def _metrics(matrix: list[list[float]], summaries: list[dict], *, seconds: float) -> dict:
    metrics = summary(matrix)
    capacity = summaries[-1].get("capacity") if summaries else None
    if capacity is not None:
        metrics["final_capacity"] = capacity
    metrics["wall_time_seconds"] = round(seconds, 3)
    return metrics


def _write_outputs(
    folder: Path, metrics: dict, summaries: list[dict], module: ContinualModule
) -> None:
    write_json(folder / "metrics.json", metrics)
    write_accuracy_matrix(folder / "accuracy_matrix.csv", metrics["accuracy_matrix"])
    write_json(folder / "tasks.json", {"tasks": summaries})
    write_curves(folder / "training_curves.csv", module.curves)


def _set_threads(num_threads: int | None) -> None:
    if num_threads is not None:
        torch.set_num_threads(num_threads)


@contextmanager
def _run_logging(folder: Path):
    """Send hatcl's and Lightning's log records to ``run.log``; keep the console quiet."""
    handler = logging.FileHandler(folder / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(name) for name in ("hatcl", "lightning.pytorch", "lightning")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*`IterableDataset` has `__len__`.*")
        warnings.filterwarnings("ignore", message=".*Total length of .* across ranks is zero.*")
        warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.removeHandler(handler)
                logger.setLevel(level)
            handler.close()
