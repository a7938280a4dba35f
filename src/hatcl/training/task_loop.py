"""One task through Lightning: train it (the algorithm consolidates it), test the seen tasks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import lightning as L
import torch

from hatcl.data.base import TaskData
from hatcl.training.batches import TensorBatches, pin_batches, release_freed_memory
from hatcl.training.distributed import ShardBatches, resolve_strategy
from hatcl.training.experiment import ExperimentConfig
from hatcl.training.module import ContinualModule
from hatcl.training.position import InTaskResume
from hatcl.training.progress import EpochProgressBar
from hatcl.training.step_events import KeepStopSignals


def train_task(
    module: ContinualModule,
    task: TaskData,
    *,
    config: ExperimentConfig,
    seen_tasks: Sequence[TaskData] | None = None,
    callbacks: Sequence[L.Callback] = (),
    resume_from: InTaskResume | None = None,
    step_events: Callable[[TensorBatches], L.Callback] | None = None,
) -> L.Trainer:
    """Train one task; the algorithm's task hooks run inside ``fit``; returns the trainer.

    ``seen_tasks`` (tasks 1..current, default just ``task``) is offered to the algorithm's
    ``training_split`` (e.g. joint training trains on their union). ``callbacks`` are added to
    the task's Lightning trainer. ``resume_from`` (an in-task checkpoint and its position)
    continues the task where it stopped; ``step_events`` makes the callback that tells the run's
    observers each step (stop requests, step checkpoints) for the task's training batches.
    """
    module.start_task(task_data=task)
    module.train()
    train = training_batches(module, task, seen_tasks=seen_tasks or (task,), config=config)
    val = eval_batches(task.val, config) if len(task.val.y) else None
    max_epochs = config.trainer.max_epochs
    if resume_from is not None:
        module.resume_in_task(resume_from)
        train.resume_epoch(generator_state=resume_from.position.generator_state)
        max_epochs -= resume_from.position.epoch
    guards = [step_events(train)] if step_events is not None else []
    trainer = make_trainer(
        config, max_epochs=max_epochs, callbacks=[ShardBatches([train]), *guards, *callbacks]
    )
    pin_batches(trainer.strategy.root_device, [train, val])
    trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
    return trainer


def training_batches(
    module: ContinualModule,
    task: TaskData,
    *,
    seen_tasks: Sequence[TaskData],
    config: ExperimentConfig,
) -> TensorBatches:
    """The task's shuffled training batches (a generator seeded by run seed and task id)."""
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

    Without a task id at test time (``module.evaluator`` set: ``head=cil``/``dil``) the accuracy
    is task-agnostic, the calibration is fitted first, and ``module.test_report`` gets the
    task-aware accuracies, the task-id accuracies and the calibration (else it is empty).
    Under distributed training each process tests its shard and the counts are summed.
    """
    report: dict[str, object] = {}
    if module.evaluator is not None:
        report = module.evaluator.prepare(
            module.model, tasks, batch_size=config.trainer.eval_batch_size
        )
    module.start_testing(task_ids=tuple(task.task_id for task in tasks))
    loaders = [eval_batches(task.test, config) for task in tasks]
    trainer = make_trainer(config, max_epochs=1, progress=False, callbacks=[ShardBatches(loaders)])
    pin_batches(trainer.strategy.root_device, loaders)
    trainer.test(module, dataloaders=loaders, verbose=False)
    counts = module.test_counts().tolist()
    release_freed_memory()  # the freed batch buffers, so memory stays flat over many tasks
    if module.evaluator is not None:
        with_task_id = module.evaluator.predicts_task(module.model)
        report = {**test_report(counts, with_task_id=with_task_id), **report}
    module.test_report = report
    return [int(row[0]) / max(int(row[1]), 1) for row in counts]


def test_report(counts: list[list[int]], *, with_task_id: bool) -> dict[str, list[float]]:
    """Task-aware (and task-id) accuracy of each tested task from its test counts."""
    report = {"accuracy_task_aware": [row[2] / max(row[1], 1) for row in counts]}
    if with_task_id:
        report["task_id_accuracy"] = [row[3] / max(row[1], 1) for row in counts]
    return report


def make_trainer(
    config: ExperimentConfig,
    *,
    max_epochs: int,
    progress: bool = True,
    callbacks: Sequence[L.Callback] = (),
) -> L.Trainer:
    """A Lightning trainer for one task (no checkpointing or logger of Lightning's own).

    hatcl's stop handler stays in place while the trainer runs (:class:`KeepStopSignals`).
    """
    trainer = config.trainer
    show_progress = trainer.enable_progress_bar and progress
    if show_progress:
        callbacks = [*callbacks, EpochProgressBar()]
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator=trainer.accelerator,
        devices=trainer.devices,
        strategy=resolve_strategy(trainer.strategy),
        precision=trainer.precision,
        deterministic=trainer.deterministic,
        logger=False,
        callbacks=[KeepStopSignals(), *callbacks],
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=show_progress,
        num_sanity_val_steps=0,
        log_every_n_steps=trainer.log_every_n_steps,
    )


def eval_batches(split, config: ExperimentConfig) -> TensorBatches:
    """Batches of an evaluation split, in order, of ``trainer.eval_batch_size``."""
    return TensorBatches(split.x, split.y, batch_size=config.trainer.eval_batch_size)
