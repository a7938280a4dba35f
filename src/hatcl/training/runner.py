"""The task-sequence runner: open the run folder, train each task, test, write the outputs.

The task loop itself (one Lightning ``fit`` and ``test`` per task) is in
:mod:`hatcl.training.task_loop`; the run's shared state and the bookkeeping around each task in
:mod:`hatcl.training.session`; what the run writes is in :mod:`hatcl.training.outputs`.
"""

from __future__ import annotations

import gc
import signal
import time
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from rich.console import Console

from hatcl.data.base import ContinualData
from hatcl.data.build import build_run_data
from hatcl.inference.advice import note_task_prediction
from hatcl.reporting.console import summary_table
from hatcl.training.checkpoint import RunProgress
from hatcl.training.compile import compile_backbone
from hatcl.training.distributed import global_rank
from hatcl.training.experiment import ExperimentConfig, build_algorithm, build_model, build_module
from hatcl.training.interrupt import RunInterrupted, StopRequest, in_task_path, stop_signals
from hatcl.training.module import ContinualModule
from hatcl.training.outputs import run_logger, run_logging, run_metrics, write_run_files
from hatcl.training.plan import RunPlan, plan_run
from hatcl.training.reference import (
    AUTO,
    REFERENCE_SUBFOLDER,
    config_yaml,
    diagonal,
    forward_transfer_or_none,
    read_reference,
    reference_config,
)
from hatcl.training.resume import logged_step, open_run_dir, records_sent
from hatcl.training.resume_state import ResumeState, save_task_checkpoint
from hatcl.training.run_callbacks import RunCallback
from hatcl.training.session import RunSession, record_task, step_events, stop_between_tasks
from hatcl.training.task_loop import test_tasks, train_task
from hatcl.training.threads import apply_threads, note_short_run


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
    resume: bool = False,
    callbacks: Sequence[RunCallback] = (),
    stop: StopRequest | None = None,
) -> RunResult:
    """Train the configured algorithm on every task in order and write the run folder.

    The Python path: the run is planned (:func:`hatcl.training.plan.plan_run`), then run
    (:func:`run_plan`). With ``reference_run=auto`` the ``independent`` reference is trained
    first, in ``<run_dir>/reference``, and the run's FWT is measured against it.

    Args:
        config: the typed experiment configuration.
        run_dir: the run folder (created; refused if it already holds a run, unless resuming).
        resolved_config: the YAML text of the resolved configuration, saved as ``config.yaml``.
        console: where progress and the summary are printed (default: stdout; silent on
            processes other than rank 0).
        resume: continue the unfinished run in ``run_dir`` from its last complete task; its
            ``config.yaml`` must equal ``resolved_config`` (output_dir and resume aside).
        callbacks: observers of the run (see :mod:`hatcl.training.run_callbacks`).
        stop: a stop flag the caller has routed SIGINT/SIGTERM to (:func:`stop_signals`), read
            before every task and step; by default the run routes them itself while its tasks
            run.
    """
    text = resolved_config or config_yaml(config)
    plan = plan_run(config, run_dir=run_dir, resolved=text, resume=resume)
    return run_plan(plan, console=console, callbacks=callbacks, stop=stop)


def run_plan(
    plan: RunPlan,
    *,
    console: Console | None = None,
    callbacks: Sequence[RunCallback] = (),
    stop: StopRequest | None = None,
) -> RunResult:
    """Run a checked plan: nothing in it is checked or loaded again.

    A resumed run's damaged checkpoints are set aside first (renamed ``<name>.damaged``), then
    its state is restored once; see :func:`run_experiment` for the arguments.
    """
    rank = global_rank()
    console = console or Console(quiet=rank != 0)
    if plan.resumed is not None and rank == 0:
        plan.resumed.set_aside_damaged()
    folder = open_run_dir(plan.run_dir, text=plan.resolved, resume=plan.resume, rank=rank)
    reference = _reference(plan, folder, console=console, rank=rank, stop=stop)
    return _train_run(
        plan.config,
        folder=folder,
        text=plan.resolved,
        console=console,
        resumed=plan.resumed,
        reference=reference,
        callbacks=callbacks,
        stop=stop,
    )


def _train_run(
    config: ExperimentConfig,
    *,
    folder: Path,
    text: str,
    console: Console,
    resumed: ResumeState | None,
    reference: list[float] | None,
    callbacks: Sequence[RunCallback] = (),
    stop: StopRequest | None = None,
) -> RunResult:
    """Build everything, run the task loop, write the outputs (the folder is open)."""
    rank = global_rank()
    resume = resumed is not None
    with run_logging(folder, enabled=rank == 0):
        if config.trainer.num_threads is not None:
            torch.set_num_threads(config.trainer.num_threads)
        L.seed_everything(config.seed, verbose=False)
        started = time.perf_counter()
        data = build_run_data(config.data, seed=config.seed)
        algorithm = build_algorithm(config.algorithm)
        model = build_model(config, data=data, algorithm=algorithm)
        apply_threads(config.trainer.num_threads, model=model)  # null: hatcl's thread policy
        if config.trainer.compile:
            compile_backbone(model)
        module = build_module(config, model=model, algorithm=algorithm)
        progress, pending = resumed.restore(module, data) if resume else (RunProgress(), None)
        loggers = config.trainer.loggers
        session = RunSession(
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
                curves_sent=records_sent(folder, loggers, progress, module, resume=resume),
                text=text,
                rank=rank,
                resume_step=logged_step(progress, module) if resume else None,
            ),
            rank=rank,
            callbacks=tuple(callbacks),
            pending=pending,
            stop=stop,
        )
        try:
            with _startup_objects_frozen():
                _run_tasks(session)
        except RunInterrupted:
            session.run_logger.flush(module.curves)  # the log reaches the interruption
            raise
        metrics = run_metrics(progress.matrix, progress.summaries)
        metrics["fwt"] = forward_transfer_or_none(progress.matrix, reference)
        if "accuracy_matrix_task_aware" in metrics:  # head=cil/dil: FWT on both matrices
            aware = metrics["accuracy_matrix_task_aware"]
            metrics["fwt_task_aware"] = forward_transfer_or_none(aware, reference)
        if rank == 0:
            write_run_files(
                config,
                folder,
                metrics=metrics,
                progress=progress,
                curves=module.curves,
                task_seconds=session.task_seconds,
                seconds=time.perf_counter() - started,
            )
        for callback in session.callbacks:
            callback.on_run_end(module=module, metrics=metrics, rank=rank)
    title = f"{config.algorithm.name} on {data.source}/{data.scenario} (seed {config.seed})"
    summary_table(console, title=title, metrics=metrics, run_dir=str(folder))
    note_short_run(console, uses_masks=algorithm.uses_masks, epochs=config.trainer.max_epochs)
    note_task_prediction(console, model=module.model, cil=config.cil)
    return RunResult(run_dir=folder, metrics=metrics, module=module, data=data)


@contextmanager
def _startup_objects_frozen():
    """Keep the objects made before the tasks (modules imported, data, model) out of the
    garbage collector's scans while the tasks run.

    The collection after each task (:func:`_run_task`) then looks at that task's objects only:
    a full scan of the ~400,000 objects torch, Lightning and the plotting libraries create at
    import takes about 0.4 s per task; frozen, a few milliseconds.
    """
    gc.collect(1)  # the young garbage only: a full scan is what this avoids
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _run_tasks(session: RunSession) -> None:
    """Train and test every remaining task; a stop signal ends the run with a checkpoint.

    The stop flag is read before every task and every step, and once more after the last task
    (before the outputs are written).
    """
    scope = nullcontext(session.stop) if session.stop is not None else stop_signals()
    with scope as request:
        for task in session.data.tasks[session.progress.completed :]:
            stop_between_tasks(session, request)
            try:
                _run_task(session, task, request=request)
            except SIGTERMException:  # Lightning's own SIGTERM exit (a SystemExit with code 0)
                stop_between_tasks(session, request, signum=signal.SIGTERM)
                raise
        stop_between_tasks(session, request)


def _run_task(session: RunSession, task, *, request: StopRequest) -> None:
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
        step_events=partial(step_events, session, task_id=task.task_id, request=request),
    )
    row = test_tasks(module, data.tasks[: task.task_id], config=config)
    session.task_seconds.append(round(time.perf_counter() - started, 3))
    record_task(session, task_id=task.task_id, row=row)
    if session.rank == 0 and config.trainer.checkpoints:
        save_task_checkpoint(
            module=module, progress=session.progress, folder=session.folder, trainer=trainer
        )
        in_task_path(session.folder, task.task_id).unlink(missing_ok=True)
    # A finished task's Lightning trainer sits in reference cycles that hold its batches
    # (joint: the union of every seen task); free them now, not at some later collection.
    del trainer
    gc.collect()
    for callback in session.callbacks:
        callback.on_task_saved(task_id=task.task_id, run_dir=session.folder)


def _reference(
    plan: RunPlan,
    folder: Path,
    *,
    console: Console,
    rank: int,
    stop: StopRequest | None = None,
) -> list[float] | None:
    """The FWT reference b[tau]: none, a finished folder's (read when planned), or ``auto``
    (trained here first; a resumed run reuses the one it already trained).
    """
    config = plan.config
    if config.reference_run is None:
        return None
    if config.reference_run != AUTO:
        return list(plan.reference)
    target = folder / REFERENCE_SUBFOLDER
    if plan.resume and (target / "metrics.json").is_file():
        return read_reference(target)
    console.print(f"training the 'independent' FWT reference in {target}")
    derived = reference_config(config)
    text = config_yaml(derived)
    result = _train_run(
        derived,
        folder=open_run_dir(target, text=text, resume=False, rank=rank),
        text=text,
        console=Console(quiet=True),
        resumed=None,
        reference=None,
        stop=stop,
    )
    return diagonal(result.metrics["accuracy_matrix"])

