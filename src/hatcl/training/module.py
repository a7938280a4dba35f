"""The one training loop: a Lightning module with manual optimization owning the hook order."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

from hatcl.algorithms.base import Algorithm, StepContext
from hatcl.backbones.base import BackboneOutput
from hatcl.backbones.model import ContinualModel, ModelOutput
from hatcl.config import OptimizerConfig
from hatcl.masking.stage import Stage
from hatcl.training.optim import build_optimizer, build_scheduler


class _Accuracy:
    """Correct and total counts kept as tensors (no host sync per batch)."""

    def __init__(self) -> None:
        self.correct = torch.zeros((), dtype=torch.long)
        self.total = torch.zeros((), dtype=torch.long)

    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        self.correct = self.correct.to(logits.device) + (logits.argmax(1) == targets).sum()
        self.total = self.total.to(logits.device) + targets.numel()

    def value(self) -> float:
        return float(self.correct) / max(int(self.total), 1)


class ContinualModule(L.LightningModule):
    """Trains one task at a time with the algorithm's hooks in the order of spec §3.

    Args:
        model: backbone and heads.
        algorithm: the continual-learning algorithm (its hooks are called here only).
        optimizer: optimizer and scheduler settings (a fresh optimizer per ``fit``).
        log_every_n_steps: how often step scalars are collected (logging is batched).
    """

    def __init__(
        self,
        *,
        model: ContinualModel,
        algorithm: Algorithm,
        optimizer: OptimizerConfig,
        log_every_n_steps: int = 10,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.model = model
        self.algorithm = algorithm
        self.optimizer_config = optimizer
        self.log_every_n_steps = log_every_n_steps
        self.task_id = 1
        self.test_task_ids: tuple[int, ...] = ()
        self.curves: list[dict[str, float]] = []
        self.test_accuracy: dict[int, _Accuracy] = {}
        self._window = _Window()  # a plain object: no nn.Module attribute overhead per step
        self._val_accuracy = _Accuracy()

    # -- optimisation ---------------------------------------------------------------------

    def configure_optimizers(self):
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
        if scheduler is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        inputs, targets = batch[0], batch[1]
        task_ids = batch[2] if len(batch) > 2 else None
        optimizer = self.optimizers()
        num_batches = int(self.trainer.num_training_batches)
        scale = self.algorithm.training_scale(batch_index=batch_idx, num_batches=num_batches)
        optimizer.zero_grad(set_to_none=True)
        if task_ids is None:
            output = self.model(inputs, task_id=self.task_id, stage=Stage.TRAIN, scale=scale)
        else:
            output = grouped_forward(self.model, inputs, task_ids=task_ids, scale=scale)
        context = StepContext(
            model=self.model,
            task_id=self.task_id,
            batch_index=batch_idx,
            num_batches=num_batches,
            scale=scale,
            inputs=inputs,
            targets=targets,
            output=output,
            task_ids=task_ids,
        )
        loss = F.cross_entropy(output.logits, targets)
        for term in self.algorithm.loss_terms(context).values():
            loss = loss + term
        self.manual_backward(loss)
        self.algorithm.adjust_gradients(context)
        self.algorithm.compensate_gradients(context)
        optimizer.step()
        self.algorithm.after_optimizer_step(context)
        self._collect_step(loss.detach(), output.logits.detach(), targets)

    def on_train_epoch_end(self) -> None:
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()

    # -- evaluation -----------------------------------------------------------------------

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        inputs, targets = batch
        scale = self.algorithm.evaluation_scale()
        output = self.model(inputs, task_id=self.task_id, stage=Stage.VALIDATION, scale=scale)
        self._val_accuracy.update(output.logits, targets)

    def on_validation_epoch_end(self) -> None:
        accuracy = self._val_accuracy.value()
        self._val_accuracy = _Accuracy()
        self.curves.append(
            {
                "task": self.task_id,
                "epoch": self.current_epoch,
                "step": self.global_step,
                "val_accuracy": accuracy,
            }
        )
        self.log("val_acc", accuracy, prog_bar=True)

    def test_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        inputs, targets = batch
        task_id = self.test_task_ids[dataloader_idx]
        output = self.model(inputs, task_id=task_id, stage=Stage.TEST)
        self.test_accuracy.setdefault(task_id, _Accuracy()).update(output.logits, targets)

    # -- batched logging ------------------------------------------------------------------

    def _collect_step(
        self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor
    ) -> None:
        window = self._window
        window.add(loss, logits, targets)
        if window.steps < self.log_every_n_steps:
            return
        record = {
            "task": self.task_id,
            "epoch": self.current_epoch,
            "step": self.global_step,
            "train_loss": window.mean_loss(),
            "train_accuracy": window.accuracy.value(),
            **self.algorithm.step_metrics(),
        }
        self.curves.append(record)
        self.log_dict(
            {k: v for k, v in record.items() if k not in ("task", "epoch", "step")},
            prog_bar=True,
        )
        self._window = _Window()


class _Window:
    """Loss and accuracy summed over the steps since the last log (tensors: no host sync)."""

    def __init__(self) -> None:
        self.loss = torch.zeros(())
        self.accuracy = _Accuracy()
        self.steps = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        self.loss = self.loss.to(loss.device) + loss
        self.accuracy.update(logits, targets)
        self.steps += 1

    def mean_loss(self) -> float:
        return float(self.loss) / max(self.steps, 1)


def grouped_forward(
    model: ContinualModel, inputs: torch.Tensor, *, task_ids: torch.Tensor, scale: float | None
) -> ModelOutput:
    """Training forward of a mixed-task batch: each sample through its own task's head.

    Each task's samples run as one group. The logits are padded with ``-inf`` to the widest head,
    so that cross-entropy and argmax over a row only ever see that sample's own head; features
    and activations are re-assembled in batch order (per-task masks are not returned).
    """
    groups = [int(t) for t in torch.unique(task_ids).tolist()]
    indices = [torch.nonzero(task_ids == t).squeeze(1) for t in groups]
    outputs = [
        model(inputs[index], task_id=t, stage=Stage.TRAIN, scale=scale)
        for t, index in zip(groups, indices)
    ]
    inverse = torch.argsort(torch.cat(indices))
    width = max(out.logits.shape[1] for out in outputs)
    padded = [
        F.pad(out.logits, (0, width - out.logits.shape[1]), value=float("-inf")) for out in outputs
    ]
    logits = torch.cat(padded)[inverse]
    features = torch.cat([out.backbone.features for out in outputs])[inverse]
    activations = {
        key: torch.cat([out.backbone.activations[key] for out in outputs])[inverse]
        for key in outputs[0].backbone.activations
    }
    backbone = BackboneOutput(features=features, activations=activations)
    return ModelOutput(logits=logits, backbone=backbone)
