"""The one training loop: a Lightning module with manual optimization owning the hook order."""

from __future__ import annotations

import lightning as L
import torch

from hatcl.algorithms.base import Algorithm
from hatcl.backbones.model import ContinualModel
from hatcl.config import OptimizerConfig
from hatcl.data.base import TaskData
from hatcl.inference.evaluator import TaskAgnosticEvaluator
from hatcl.masking.stage import Stage
from hatcl.metrics.counts import TaskAgnosticCount
from hatcl.training.counters import CorrectCount, LoggingWindow
from hatcl.training.distributed import (
    all_reduce_sum,
    broadcast_buffers,
    global_rank,
    ignore_rank_local_buffers,
    is_distributed,
)
from hatcl.training.loss_watch import LossWatch
from hatcl.training.optim import build_optimizer, build_scheduler
from hatcl.training.position import TASK_START, InTaskResume, TaskPosition
from hatcl.training.step import run_training_step

#: The step scalars shown in the progress bar; the rest (per-layer ``rate_*`` statistics, ...)
#: go only to the loggers and ``training_curves.csv``.
PROGRESS_BAR_KEYS = ("train_loss", "train_accuracy", "capacity")

__all__ = ["PROGRESS_BAR_KEYS", "ContinualModule", "CorrectCount"]


class ContinualModule(L.LightningModule):
    """Trains one task at a time with the algorithm's hooks in the order of docs/spec.md §3.

    Args:
        model: backbone and heads.
        algorithm: the continual-learning algorithm (its hooks are called here only).
        optimizer: optimizer and scheduler settings (a fresh optimizer per ``fit``).
        log_every_n_steps: how often step scalars are collected (logging is batched).
        evaluator: how a test input is predicted without its task id (``head=cil``/``dil``);
            ``None``: tested with the task id (``head=til``).
        stop_on_nonfinite: stop the run when the training loss becomes non-finite (else warn;
            see :mod:`hatcl.training.loss_watch`).
    """

    def __init__(
        self,
        *,
        model: ContinualModel,
        algorithm: Algorithm,
        optimizer: OptimizerConfig,
        log_every_n_steps: int = 10,
        evaluator: TaskAgnosticEvaluator | None = None,
        stop_on_nonfinite: bool = True,
    ) -> None:
        super().__init__()
        self.evaluator = evaluator
        self.test_report: dict[str, object] = {}  # the last test's TAw/task-id rows (cil, dil)
        self.automatic_optimization = False
        self.model = model
        self.algorithm = algorithm
        self.optimizer_config = optimizer
        self.log_every_n_steps = log_every_n_steps
        self.task_id = 1
        self.curves: list[dict[str, float]] = []
        # the latest values the progress bar shows (read by EpochProgressBar.get_metrics):
        # Lightning's self.log costs milliseconds per call for what only the bar reads
        self.progress_values: dict[str, float] = {}
        self._task_started = False
        self._consolidate: TaskData | None = None
        self._test_task_ids: tuple[int, ...] = ()
        self._test_counts: dict[int, CorrectCount | TaskAgnosticCount] = {}
        self._window = LoggingWindow()  # a plain object: no nn.Module attribute overhead per step
        self._val_accuracy = CorrectCount()
        self.resumed_at: TaskPosition = TASK_START  # where a resumed fit starts (its skips)
        self._resume: InTaskResume | None = None  # the in-task states to load once fit began
        self.run_step_offset = 0  # steps of the run before this task (the records' step axis)
        self._first_loss: torch.Tensor | None = None  # the task's first step loss (0-dim)
        self.loss_watch = LossWatch(stop_on_nonfinite=stop_on_nonfinite, report=global_rank() == 0)

    # -- the task's life cycle -------------------------------------------------------------

    def start_task(self, *, task_data: TaskData) -> None:
        """Make ``task_data`` the task the next ``fit`` trains and then consolidates.

        Creates the task's head and per-task backbone parts now (Lightning moves them with the
        model); the algorithm's ``on_task_start`` runs inside ``fit``, once the model is on its
        device and in its dtype, right before the task's optimizer is built; its
        ``on_task_end`` runs at the end of ``fit``, while the model is still there.
        """
        self.task_id = task_data.task_id
        self.model.setup_task(task_id=task_data.task_id, num_classes=task_data.num_classes)
        self._task_started = False
        self._consolidate = task_data
        self.resumed_at = TASK_START
        self._resume = None
        self._first_loss = None

    def resume_in_task(self, point: InTaskResume) -> None:
        """Continue the started task from an in-task checkpoint (its states and position).

        The model, algorithm, optimizer and scheduler states are loaded once ``fit`` has run the
        task's start hooks and built the optimizer; the RNG states right before the first step.
        The first ``batch`` batches of the first epoch (the same order again) are passed over, so
        that Lightning's batch index and epoch end stay those of the interrupted run.
        """
        self.resumed_at = point.position
        self._resume = point

    def run_step(self) -> int:
        """Steps of the whole run done so far: the one step axis of the curves and loggers."""
        return self.run_step_offset + self.task_steps_done

    def task_position(self, batch_idx: int) -> TaskPosition:
        """Epoch, batch within the epoch and steps done of the task, counting a resumed part."""
        start = self.resumed_at
        return TaskPosition(
            epoch=self.current_epoch + start.epoch,
            batch=batch_idx,
            step=self.global_step + start.step,
        )

    def skips(self, batch_idx: int) -> bool:
        """Whether this batch was trained before the run was interrupted (a resumed fit)."""
        return self.current_epoch == 0 and batch_idx < self.resumed_at.batch

    @property
    def task_steps_done(self) -> int:
        """Steps of the task done, counting those before a resume."""
        return self.global_step + self.resumed_at.step

    def setup(self, stage: str) -> None:
        """Lightning's hook before the strategy wraps the module: under DDP the rank-local
        buffers (a replay memory's slots) are neither broadcast nor compared."""
        ignore_rank_local_buffers(self)

    def on_train_end(self) -> None:
        """Consolidate the task on the training device: reductions, then ``on_task_end``."""
        task_data, self._consolidate = self._consolidate, None
        if task_data is None:
            return
        broadcast_buffers(self.model)
        all_reduce_sum(self.algorithm.distributed_sums())
        self.algorithm.on_task_end(task_id=task_data.task_id, model=self.model, task_data=task_data)

    def _ensure_task_started(self) -> None:
        if not self._task_started:
            self.algorithm.on_task_start(task_id=self.task_id, model=self.model)
            self._task_started = True

    # -- optimisation ---------------------------------------------------------------------

    def configure_optimizers(self):
        self._ensure_task_started()
        if self._resume is not None:
            self._resume.load_states(model=self.model, algorithm=self.algorithm)
        config = self.optimizer_config
        optimizer = build_optimizer(
            self.algorithm.trainable_parameters(self.model),
            name=config.name,
            lr=config.lr,
            weight_decay=config.weight_decay,
            options=config.options,
        )
        scheduler = build_scheduler(
            optimizer, name=config.scheduler, options=config.scheduler_options
        )
        if self._resume is not None:
            self._resume.load_optimizer(optimizer, scheduler)
        if scheduler is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }

    def on_train_start(self) -> None:
        """A resumed task continues with the RNG states of the moment it stopped."""
        if self._resume is not None:
            self._resume.load_rng()
            self._resume = None

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        if self.skips(batch_idx):
            return
        result = run_training_step(
            model=self.model,
            algorithm=self.algorithm,
            optimizer=self.optimizers(),
            inputs=self.algorithm.augment_inputs(batch[0]),
            targets=batch[1],
            task_ids=batch[2] if len(batch) > 2 else None,
            task_id=self.task_id,
            batch_index=batch_idx,
            num_batches=int(self.trainer.num_training_batches),
            backward=self.manual_backward,
            # a grad scaler (16-mixed) skips steps with inf/nan gradients: hooks are told
            check_finite=getattr(self.trainer.precision_plugin, "scaler", None) is not None,
        )
        context = result.context
        self._collect_step(result.loss.detach(), context.output.logits.detach(), context.targets)

    def on_train_epoch_end(self) -> None:
        if self._window.steps:  # one 0-dim read per epoch: a window shorter than a log step
            self._check_loss(self._window.mean_loss())
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()

    # -- evaluation -----------------------------------------------------------------------

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        inputs, targets = batch
        scale = self.algorithm.evaluation_scale()
        output = self.model(inputs, task_id=self.task_id, stage=Stage.VALIDATION, scale=scale)
        targets = self.model.heads.training_targets(targets, task_id=self.task_id)
        self._val_accuracy.update(output.logits, targets)

    def on_validation_epoch_end(self) -> None:
        accuracy = self._val_accuracy.value()
        self._val_accuracy = CorrectCount()
        epoch = self.task_position(0).epoch
        record = {"task": self.task_id, "epoch": epoch, "step": self.run_step()}
        self.curves.append({**record, "val_accuracy": accuracy})
        self.progress_values["val_acc"] = accuracy

    def start_testing(self, *, task_ids: tuple[int, ...]) -> None:
        """Reset the test counts; the next ``test`` call's loaders are these tasks in order."""
        self._test_task_ids = tuple(task_ids)
        count = CorrectCount if self.evaluator is None else TaskAgnosticCount
        self._test_counts = {task_id: count() for task_id in task_ids}

    def test_counts(self) -> torch.Tensor:
        """``[[correct, samples, TAw correct, task-id correct], ...]`` per tested task.

        Summed over processes (int64, CPU); the last two are counted without a task id at test
        time only (``evaluator`` set).
        """
        counts = [self._test_counts[t] for t in self._test_task_ids]
        for metric in counts:
            metric.sync(should_sync=is_distributed())
        rows = [metric.compute() for metric in counts]
        return torch.stack(rows).cpu() if rows else torch.zeros((0, 2), dtype=torch.long)

    def test_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        inputs, targets = batch
        task_id = self._test_task_ids[dataloader_idx]
        metric = self._test_counts[task_id]
        metric.to(inputs.device)
        if self.evaluator is not None:
            seen = self._test_task_ids[-1]
            counts = self.evaluator.batch_counts(
                self.model, inputs, targets, task_id=task_id, seen=seen
            )
            metric.update(counts, targets.numel())
            return
        output = self.model(inputs, task_id=task_id, stage=Stage.TEST)
        metric.update(output.logits, targets)

    # -- checkpoints ----------------------------------------------------------------------

    def loop_state(self) -> dict:
        """The loop's own state a checkpoint keeps: the batched-logging window (a window may
        span two tasks)."""
        return {"logging_window": self._window.state()}

    def load_loop_state(self, loop: dict) -> None:
        """Restore what :meth:`loop_state` kept."""
        state = loop.get("logging_window")
        if state is not None:
            self._window = LoggingWindow.from_state(state)

    # -- batched logging ------------------------------------------------------------------

    def _collect_step(
        self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor
    ) -> None:
        window = self._window
        window.add(loss, logits, targets)
        if self._first_loss is None:
            self._first_loss = loss
        if window.steps < self.log_every_n_steps:
            return
        epoch = self.task_position(0).epoch
        mean_loss = window.mean_loss()
        self._check_loss(mean_loss)
        record = {
            "task": self.task_id,
            "epoch": epoch,
            "step": self.run_step(),
            "train_loss": mean_loss,
            "train_accuracy": window.accuracy(),
            **self.algorithm.step_metrics(),
        }
        self.curves.append(record)
        self.progress_values.update({k: record[k] for k in PROGRESS_BAR_KEYS if k in record})
        self._window = LoggingWindow()


    def _check_loss(self, mean_loss: float) -> None:
        """The loss watch at a point where the loss is read anyway (a log step, an epoch end)."""
        first = None if self._first_loss is None else float(self._first_loss)
        self.loss_watch.check(
            mean_loss, task_id=self.task_id, step=self.run_step(), first_loss=first
        )

