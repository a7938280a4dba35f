"""The task-sequence runner: train each task, test every seen task, write the run folder."""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import signal
import time
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
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
from hatcl.training.batches import TensorBatches, release_freed_memory
from hatcl.training.checkpoint import (
    RunProgress,
    capture,
    check_resumable,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    restore,
    save_checkpoint,
)
from hatcl.training.distributed import (
    ShardBatches,
    all_reduce_sum,
    broadcast_buffers,
    global_rank,
    resolve_strategy,
)
from hatcl.training.experiment import (
    ExperimentConfig,
    build_algorithm,
    build_model,
    build_module,
)
from hatcl.training.loggers import RunLogger, build_loggers
from hatcl.training.module import ContinualModule
from hatcl.training.reference import (
    AUTO,
    REFERENCE_SUBFOLDER,
    config_yaml,
    forward_transfer_or_none,
    read_reference,
    reference_accuracies,
)

_LOGGER = logging.getLogger("hatcl")

# Test hook: SIGKILL this process right after the checkpoint of the task with this id.
FAULT_AFTER_TASK_ENV = "HATCL_FAULT_AFTER_TASK"
# Diagnostic: every process writes rank_<r>.json (metrics and a hash of its state) here.
STATE_DIGEST_ENV = "HATCL_STATE_DIGEST_DIR"


@dataclass(frozen=True)
class RunResult:
    """What a finished run produced (also written to ``run_dir``)."""

    run_dir: Path
    metrics: dict
    module: ContinualModule
    data: ContinualData


@dataclass
class _Session:
    """The state of one run shared by the task loop's helpers."""

    config: ExperimentConfig
    folder: Path
    module: ContinualModule
    data: ContinualData
    console: Console
    progress: RunProgress
    run_logger: RunLogger
    rank: int
    task_seconds: list[float] = field(default_factory=list)


def run_experiment(
    config: ExperimentConfig,
    *,
    run_dir: str | Path,
    resolved_config: str | None = None,
    console: Console | None = None,
    resume: bool = False,
) -> RunResult:
    """Train the configured algorithm on every task in order and write the run folder.

    Args:
        config: the typed experiment configuration.
        run_dir: the run folder (created; refused if it already holds a run, unless resuming).
        resolved_config: the YAML text of the resolved configuration, saved as ``config.yaml``.
        console: where progress and the summary are printed (default: stdout; silent on
            processes other than rank 0).
        resume: continue the unfinished run in ``run_dir`` from its last complete task; its
            ``config.yaml`` must equal ``resolved_config`` (output_dir and resume aside).
    """
    rank = global_rank()
    console = console or Console(quiet=rank != 0)
    text = resolved_config or config_yaml(config)
    folder = _open_run_dir(run_dir, text=text, resume=resume, rank=rank)
    reference = _reference(config, folder, console=console, resume=resume)
    with _run_logging(folder, enabled=rank == 0):
        _set_threads(config.trainer.num_threads)
        L.seed_everything(config.seed, verbose=False)
        started = time.perf_counter()
        data = build_continual_data(config.data, seed=config.seed)
        algorithm = build_algorithm(config.algorithm)
        model = build_model(config, data=data, algorithm=algorithm)
        module = build_module(config, model=model, algorithm=algorithm)
        progress = _resume_progress(folder, module, data) if resume else RunProgress()
        session = _Session(
            config=config,
            folder=folder,
            module=module,
            data=data,
            console=console,
            progress=progress,
            run_logger=_run_logger(config, folder, progress, module, text=text, rank=rank),
            rank=rank,
        )
        _run_tasks(session)
        metrics = _metrics(progress.matrix, progress.summaries)
        metrics["fwt"] = forward_transfer_or_none(progress.matrix, reference)
        if rank == 0:
            _write_outputs(folder, metrics, progress.summaries, module)
            write_json(folder / "timing.json", _timing(session, time.perf_counter() - started))
            _write_figures(config, folder)
        _write_state_digest(session, metrics)
    title = f"{config.algorithm.name} on {data.source}/{data.scenario} (seed {config.seed})"
    summary_table(console, title=title, metrics=metrics, run_dir=str(folder))
    return RunResult(run_dir=folder, metrics=metrics, module=module, data=data)


def _run_tasks(session: _Session) -> None:
    config, module, data = session.config, session.module, session.data
    for task in data.tasks[session.progress.completed :]:
        started = time.perf_counter()
        trainer = train_task(
            module,
            task,
            config=config,
            seen_tasks=data.tasks[: task.task_id],
            callbacks=[session.run_logger],
        )
        row = test_tasks(module, data.tasks[: task.task_id], config=config)
        session.task_seconds.append(round(time.perf_counter() - started, 3))
        _record_task(session, task_id=task.task_id, row=row)
        if session.rank == 0 and config.trainer.checkpoints:
            _save_task_checkpoint(session, trainer)
        # A finished task's Lightning trainer sits in reference cycles that hold its batches
        # (joint: the union of every seen task); free them now, not at some later collection.
        del trainer
        gc.collect()
        _inject_fault(task.task_id)


def _record_task(session: _Session, *, task_id: int, row: list[float]) -> None:
    progress, module = session.progress, session.module
    progress.matrix.append(row)
    progress.summaries.append(
        {"task": task_id, **module.algorithm.task_summary(task_id=task_id, model=module.model)}
    )
    progress.completed = task_id
    session.run_logger.log_test(task_id=task_id, row=row)
    progress.log_step = session.run_logger.step
    task_line(session.console, task_id=task_id, num_tasks=len(session.data.tasks), row=row)


def train_task(
    module: ContinualModule,
    task: TaskData,
    *,
    config: ExperimentConfig,
    seen_tasks: Sequence[TaskData] | None = None,
    callbacks: Sequence[L.Callback] = (),
) -> L.Trainer:
    """Set up and train one task, then let the algorithm consolidate it; returns the trainer.

    ``seen_tasks`` (tasks 1..current, default just ``task``) is offered to the algorithm's
    ``training_split`` (e.g. joint training trains on their union). ``callbacks`` are added to
    the task's Lightning trainer.
    """
    model, algorithm = module.model, module.algorithm
    module.task_id = task.task_id
    model.setup_task(task_id=task.task_id, num_classes=task.num_classes)
    algorithm.on_task_start(task_id=task.task_id, model=model)
    module.train()
    train = _training_batches(module, task, seen_tasks=seen_tasks or (task,), config=config)
    val = _eval_batches(task.val, config) if len(task.val.y) else None
    trainer = make_trainer(
        config, max_epochs=config.trainer.max_epochs, callbacks=[ShardBatches([train]), *callbacks]
    )
    trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
    broadcast_buffers(model)
    all_reduce_sum(algorithm.distributed_sums())
    algorithm.on_task_end(task_id=task.task_id, model=model, task_data=task)
    return trainer


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
        equal_shards=True,
    )


def test_tasks(
    module: ContinualModule, tasks: Sequence[TaskData], *, config: ExperimentConfig
) -> list[float]:
    """Test accuracy (correct / samples) on each of ``tasks`` with its own mask and head.

    Under distributed training each process tests its shard and the counts are summed.
    """
    module.test_task_ids = tuple(task.task_id for task in tasks)
    module.test_accuracy = {}
    loaders = [_eval_batches(task.test, config) for task in tasks]
    make_trainer(config, max_epochs=1, progress=False, callbacks=[ShardBatches(loaders)]).test(
        module, dataloaders=loaders, verbose=False
    )
    counts = torch.tensor(
        [
            [int(module.test_accuracy[t].correct), int(module.test_accuracy[t].total)]
            if t in module.test_accuracy
            else [0, 0]
            for t in module.test_task_ids
        ],
        dtype=torch.long,
    )
    all_reduce_sum([counts])
    release_freed_memory()  # the freed batch buffers, so memory stays flat over many tasks
    return [int(correct) / max(int(total), 1) for correct, total in counts.tolist()]


def make_trainer(
    config: ExperimentConfig,
    *,
    max_epochs: int,
    progress: bool = True,
    callbacks: Sequence[L.Callback] = (),
) -> L.Trainer:
    """A Lightning trainer for one task (no checkpointing or logger of Lightning's own)."""
    trainer = config.trainer
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator=trainer.accelerator,
        devices=trainer.devices,
        strategy=resolve_strategy(trainer.strategy),
        precision=trainer.precision,
        deterministic=trainer.deterministic,
        logger=False,
        callbacks=list(callbacks),
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=trainer.enable_progress_bar and progress,
        num_sanity_val_steps=0,
        log_every_n_steps=trainer.log_every_n_steps,
    )


def _eval_batches(split, config: ExperimentConfig) -> TensorBatches:
    return TensorBatches(split.x, split.y, batch_size=config.trainer.eval_batch_size)


def _metrics(matrix: list[list[float]], summaries: list[dict]) -> dict:
    """The run's metrics; deterministic (wall time goes to ``timing.json``)."""
    metrics = summary(matrix)
    capacity = summaries[-1].get("capacity") if summaries else None
    if capacity is not None:
        metrics["final_capacity"] = capacity
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
def _run_logging(folder: Path, *, enabled: bool = True):
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
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*`IterableDataset` has `__len__`.*")
        warnings.filterwarnings("ignore", message=".*Total length of .* across ranks is zero.*")
        warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed.*")
        warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.removeHandler(handler)
                logger.setLevel(level)
            handler.close()


# -- run folder, resume and checkpoints ---------------------------------------------------------


def _open_run_dir(run_dir: str | Path, *, text: str, resume: bool, rank: int) -> Path:
    """Rank 0 creates (or, resuming, checks) the folder; other processes never write to it."""
    if rank != 0:
        return Path(run_dir)
    if resume:
        return check_resumable(run_dir, config_text=text)
    folder = prepare_run_dir(run_dir)
    write_text(folder / "config.yaml", text)
    return folder


def _reference(
    config: ExperimentConfig, folder: Path, *, console: Console, resume: bool
) -> list[float] | None:
    """The FWT reference; a resumed run reuses the ``auto`` reference it already trained."""
    auto_folder = folder / REFERENCE_SUBFOLDER
    if resume and config.reference_run == AUTO and (auto_folder / "metrics.json").is_file():
        return read_reference(auto_folder)
    return reference_accuracies(config, run_dir=folder, console=console)


def _resume_progress(folder: Path, module: ContinualModule, data: ContinualData) -> RunProgress:
    """Restore the last complete task's checkpoint (a fresh start if there is none)."""
    path = latest_checkpoint(folder)
    if path is None:
        _LOGGER.info("resume: no checkpoint in %s; starting at task 1", folder)
        return RunProgress()
    _LOGGER.info("resume: continuing after %s", path.name)
    return restore(
        load_checkpoint(path),
        module=module,
        num_classes=[task.num_classes for task in data.tasks],
    )


def _save_task_checkpoint(session: _Session, trainer: L.Trainer) -> None:
    optimizer = trainer.optimizers[0].state_dict() if trainer.optimizers else None
    schedulers = trainer.lr_scheduler_configs
    scheduler = schedulers[0].scheduler.state_dict() if schedulers else None
    payload = capture(
        module=session.module, progress=session.progress, optimizer=optimizer, scheduler=scheduler
    )
    save_checkpoint(checkpoint_path(session.folder, session.progress.completed), payload)


def _inject_fault(task_id: int) -> None:
    if os.environ.get(FAULT_AFTER_TASK_ENV) == str(task_id):
        os.kill(os.getpid(), signal.SIGKILL)


# -- loggers, figures, timing and diagnostics ---------------------------------------------------


def _run_logger(
    config: ExperimentConfig,
    folder: Path,
    progress: RunProgress,
    module: ContinualModule,
    *,
    text: str,
    rank: int,
) -> RunLogger:
    """One set of Lightning loggers for the whole run (none on processes other than rank 0)."""
    loggers = build_loggers(config.trainer.loggers, run_dir=folder) if rank == 0 else []
    run_logger = RunLogger(loggers, step=progress.log_step, sent=len(module.curves))
    if loggers:
        import yaml

        run_logger.log_hyperparameters(yaml.safe_load(text) or {})
    return run_logger


def _write_figures(config: ExperimentConfig, folder: Path) -> None:
    if config.trainer.figures:
        from hatcl.reporting.figures import write_run_figures

        write_run_figures(folder)


def _timing(session: _Session, seconds: float) -> dict:
    return {
        "wall_time_seconds": round(seconds, 3),
        "task_seconds_this_process": session.task_seconds,
        "resumed_after_task": session.progress.completed - len(session.task_seconds),
    }


def _write_state_digest(session: _Session, metrics: dict) -> None:
    """With ``HATCL_STATE_DIGEST_DIR`` set, write this process's metrics and state hashes."""
    target = os.environ.get(STATE_DIGEST_ENV)
    if not target:
        return
    module = session.module
    masker = getattr(module.model.backbone, "masker", None)
    digest = {
        "rank": session.rank,
        "metrics": metrics,
        "model_sha256": _state_hash(module.model),
        "algorithm_sha256": _state_hash(module.algorithm),
        "masks_sha256": None if masker is None else _state_hash(masker.store),
    }
    Path(target).mkdir(parents=True, exist_ok=True)
    write_json(Path(target) / f"rank_{session.rank}.json", digest)


def _state_hash(module: torch.nn.Module) -> str:
    sha = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        sha.update(key.encode())
        sha.update(value.detach().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()
