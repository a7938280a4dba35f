"""The task-sequence runner: open the run folder, train each task, test, write the outputs.

The task loop itself (one Lightning ``fit`` and ``test`` per task) is in
:mod:`hatcl.training.task_loop`; what the run writes is in :mod:`hatcl.training.outputs`.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import lightning as L
import torch
from rich.console import Console

from hatcl.data.base import ContinualData
from hatcl.data.build import build_run_data
from hatcl.reporting.console import summary_table, task_line
from hatcl.reporting.run_folder import prepare_run_dir, write_json, write_text
from hatcl.training.checkpoint import (
    CheckpointError,
    RunProgress,
    capture,
    check_identity,
    check_resumable,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    restore,
    save_checkpoint,
)
from hatcl.training.distributed import global_rank
from hatcl.training.experiment import (
    ExperimentConfig,
    build_algorithm,
    build_model,
    build_module,
)
from hatcl.training.interrupt import (
    RunInterrupted,
    StopRequest,
    TaskPosition,
    in_task_path,
    stop_signals,
)
from hatcl.training.loggers import RunLogger
from hatcl.training.module import ContinualModule
from hatcl.training.outputs import (
    run_logger,
    run_logging,
    run_metrics,
    timing,
    write_figures,
    write_outputs,
    write_report,
)
from hatcl.training.reference import (
    AUTO,
    REFERENCE_SUBFOLDER,
    config_yaml,
    diagonal,
    external_reference,
    forward_transfer_or_none,
    read_reference,
    reference_config,
)
from hatcl.training.run_callbacks import RunCallback
from hatcl.training.step_guard import StepGuard
from hatcl.training.task_loop import test_tasks, train_task

_LOGGER = logging.getLogger("hatcl")


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
    callbacks: Sequence[RunCallback]
    task_seconds: list[float] = field(default_factory=list)
    pending: tuple[dict, TaskPosition] | None = None  # an in-task checkpoint to continue from


def run_experiment(
    config: ExperimentConfig,
    *,
    run_dir: str | Path,
    resolved_config: str | None = None,
    console: Console | None = None,
    resume: bool = False,
    callbacks: Sequence[RunCallback] = (),
) -> RunResult:
    """Train the configured algorithm on every task in order and write the run folder.

    With ``reference_run=auto`` the ``independent`` reference is trained first, in
    ``<run_dir>/reference``, and the run's FWT is measured against it.

    Args:
        config: the typed experiment configuration.
        run_dir: the run folder (created; refused if it already holds a run, unless resuming).
        resolved_config: the YAML text of the resolved configuration, saved as ``config.yaml``.
        console: where progress and the summary are printed (default: stdout; silent on
            processes other than rank 0).
        resume: continue the unfinished run in ``run_dir`` from its last complete task; its
            ``config.yaml`` must equal ``resolved_config`` (output_dir and resume aside).
        callbacks: observers of the run (see :mod:`hatcl.training.run_callbacks`).
    """
    rank = global_rank()
    console = console or Console(quiet=rank != 0)
    text = resolved_config or config_yaml(config)
    folder = _open_run_dir(run_dir, text=text, resume=resume, rank=rank)
    reference = _reference(config, folder, console=console, resume=resume, rank=rank)
    return _train_run(
        config,
        folder=folder,
        text=text,
        console=console,
        resume=resume,
        reference=reference,
        callbacks=callbacks,
    )


def _train_run(
    config: ExperimentConfig,
    *,
    folder: Path,
    text: str,
    console: Console,
    resume: bool,
    reference: list[float] | None,
    callbacks: Sequence[RunCallback] = (),
) -> RunResult:
    """Build everything, run the task loop, write the outputs (the folder is open)."""
    rank = global_rank()
    with run_logging(folder, enabled=rank == 0):
        _set_threads(config.trainer.num_threads)
        L.seed_everything(config.seed, verbose=False)
        started = time.perf_counter()
        data = build_run_data(config.data, seed=config.seed)
        algorithm = build_algorithm(config.algorithm)
        model = build_model(config, data=data, algorithm=algorithm)
        module = build_module(config, model=model, algorithm=algorithm)
        progress = _resume_progress(folder, module, data) if resume else RunProgress()
        pending = _pending_in_task(folder, module, progress) if resume else None
        session = _Session(
            config=config,
            folder=folder,
            module=module,
            data=data,
            console=console,
            progress=progress,
            run_logger=run_logger(
                config,
                folder,
                log_step=progress.log_step,
                curves_sent=len(module.curves),
                text=text,
                rank=rank,
            ),
            rank=rank,
            callbacks=tuple(callbacks),
            pending=pending,
        )
        _run_tasks(session)
        metrics = run_metrics(progress.matrix, progress.summaries)
        metrics["fwt"] = forward_transfer_or_none(progress.matrix, reference)
        if "accuracy_matrix_task_aware" in metrics:  # head=cil/dil: FWT on both matrices
            aware = metrics["accuracy_matrix_task_aware"]
            metrics["fwt_task_aware"] = forward_transfer_or_none(aware, reference)
        if rank == 0:
            write_outputs(
                folder, metrics=metrics, summaries=progress.summaries, curves=module.curves
            )
            seconds = time.perf_counter() - started
            write_json(
                folder / "timing.json",
                timing(
                    seconds=seconds,
                    task_seconds=session.task_seconds,
                    completed=progress.completed,
                ),
            )
            write_figures(config, folder)
            write_report(config, folder)
        for callback in session.callbacks:
            callback.on_run_end(module=module, metrics=metrics, rank=rank)
    title = f"{config.algorithm.name} on {data.source}/{data.scenario} (seed {config.seed})"
    summary_table(console, title=title, metrics=metrics, run_dir=str(folder))
    return RunResult(run_dir=folder, metrics=metrics, module=module, data=data)


def _run_tasks(session: _Session) -> None:
    """Train and test every remaining task; a stop signal ends the run with a checkpoint."""
    with stop_signals() as request:
        for task in session.data.tasks[session.progress.completed :]:
            _run_task(session, task, request=request)
            if request:
                saved = checkpoint_path(session.folder, task.task_id)
                raise RunInterrupted(
                    signum=int(request.signum),
                    task_id=task.task_id,
                    step=None,
                    total_steps=None,
                    run_dir=session.folder,
                    checkpoint=saved if saved.exists() else None,
                )


def _run_task(session: _Session, task, *, request: StopRequest) -> None:
    config, module, data = session.config, session.module, session.data
    started = time.perf_counter()
    resume_from, session.pending = session.pending, None
    trainer = train_task(
        module,
        task,
        config=config,
        seen_tasks=data.tasks[: task.task_id],
        callbacks=[session.run_logger],
        resume_from=resume_from,
        step_guard=partial(_step_guard, session, task_id=task.task_id, request=request),
    )
    row = test_tasks(module, data.tasks[: task.task_id], config=config)
    session.task_seconds.append(round(time.perf_counter() - started, 3))
    _record_task(session, task_id=task.task_id, row=row)
    if session.rank == 0 and config.trainer.checkpoints:
        _save_task_checkpoint(session, trainer)
        in_task_path(session.folder, task.task_id).unlink(missing_ok=True)
    # A finished task's Lightning trainer sits in reference cycles that hold its batches
    # (joint: the union of every seen task); free them now, not at some later collection.
    del trainer
    gc.collect()
    for callback in session.callbacks:
        callback.on_task_saved(task_id=task.task_id, run_dir=session.folder)


def _step_guard(session: _Session, batches, *, task_id: int, request: StopRequest) -> StepGuard:
    hooks = [partial(_on_step, callback, task_id) for callback in session.callbacks]
    return StepGuard(
        request=request,
        batches=batches,
        save=partial(_save_in_task_checkpoint, session, task_id),
        every_n_steps=session.config.trainer.checkpoint_every_n_steps,
        on_step=hooks,
        task_id=task_id,
        total_steps=len(batches) * session.config.trainer.max_epochs,
        run_dir=session.folder,
    )


def _on_step(callback: RunCallback, task_id: int, step: int) -> None:
    callback.on_step(task_id=task_id, step=step)


def _record_task(session: _Session, *, task_id: int, row: list[float]) -> None:
    progress, module = session.progress, session.module
    progress.matrix.append(row)
    progress.summaries.append(
        {
            "task": task_id,
            **module.test_report,
            **module.algorithm.task_summary(task_id=task_id, model=module.model),
        }
    )
    progress.completed = task_id
    session.run_logger.log_test(task_id=task_id, row=row)
    progress.log_step = session.run_logger.step
    task_line(session.console, task_id=task_id, num_tasks=len(session.data.tasks), row=row)


def _set_threads(num_threads: int | None) -> None:
    if num_threads is not None:
        torch.set_num_threads(num_threads)


# -- run folder, FWT reference, resume and checkpoints ------------------------------------------


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
    config: ExperimentConfig, folder: Path, *, console: Console, resume: bool, rank: int
) -> list[float] | None:
    """The FWT reference b[tau]: none, a finished folder, or ``auto`` (trained here first).

    A resumed run reuses the ``auto`` reference it already trained.
    """
    if config.reference_run is None:
        return None
    if config.reference_run != AUTO:
        return external_reference(config)
    target = folder / REFERENCE_SUBFOLDER
    if resume and (target / "metrics.json").is_file():
        return read_reference(target)
    console.print(f"training the 'independent' FWT reference in {target}")
    derived = reference_config(config)
    text = config_yaml(derived)
    result = _train_run(
        derived,
        folder=_open_run_dir(target, text=text, resume=False, rank=rank),
        text=text,
        console=Console(quiet=True),
        resume=False,
        reference=None,
    )
    return diagonal(result.metrics["accuracy_matrix"])


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


def _pending_in_task(
    folder: Path, module: ContinualModule, progress: RunProgress
) -> tuple[dict, TaskPosition] | None:
    """The in-task checkpoint of the task after the last complete one, if there is one.

    Its curves and logging window are taken now (the run logger starts after them); the model,
    optimizer and RNG states are loaded once the task's ``fit`` has started.
    """
    path = in_task_path(folder, progress.completed + 1)
    if not path.exists():
        return None
    try:
        payload = load_checkpoint(path)
        check_identity(payload, model=module.model, algorithm=module.algorithm, path=path)
    except CheckpointError as error:
        _LOGGER.warning(
            "resume: %s; task %d starts from its beginning", error, progress.completed + 1
        )
        return None
    _LOGGER.info("resume: continuing inside task %d from %s", progress.completed + 1, path.name)
    module.curves = [dict(record) for record in payload["metrics"]["curves"]]
    module.on_load_checkpoint(payload["loop"])
    return payload, TaskPosition.from_payload(payload["position"])


def _trainer_states(trainer: L.Trainer) -> tuple[dict | None, dict | None]:
    optimizer = trainer.optimizers[0].state_dict() if trainer.optimizers else None
    schedulers = trainer.lr_scheduler_configs
    scheduler = schedulers[0].scheduler.state_dict() if schedulers else None
    return optimizer, scheduler


def _save_task_checkpoint(session: _Session, trainer: L.Trainer) -> None:
    optimizer, scheduler = _trainer_states(trainer)
    payload = capture(
        module=session.module, progress=session.progress, optimizer=optimizer, scheduler=scheduler
    )
    save_checkpoint(checkpoint_path(session.folder, session.progress.completed), payload)


def _save_in_task_checkpoint(
    session: _Session, task_id: int, trainer: L.Trainer, position: TaskPosition
) -> Path | None:
    """Write ``in_task_<t>.ckpt``: the state before the step at ``position`` (rank 0 only)."""
    if session.rank != 0 or not session.config.trainer.checkpoints:
        return None
    optimizer, scheduler = _trainer_states(trainer)
    payload = capture(
        module=session.module, progress=session.progress, optimizer=optimizer, scheduler=scheduler
    )
    payload["position"] = position.as_payload()
    return save_checkpoint(in_task_path(session.folder, task_id), payload)
