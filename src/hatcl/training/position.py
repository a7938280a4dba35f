"""Where a task's training is, and the in-task checkpoint a resumed task continues from.

:class:`TaskPosition` is the one record of a position (saved in ``in_task_<t>.ckpt``, restored
from it); :class:`InTaskResume` is what a resumed task loads once its ``fit`` has begun (the
states of the checkpoint, in the order Lightning allows: model and algorithm before the
optimizer is built, the optimizer's and scheduler's states after, the RNG states right before
the first step). Neither needs Lightning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from hatcl.training.rng_state import set_rng_states


@dataclass(frozen=True)
class TaskPosition:
    """Where a task's training is: the next step to run.

    Attributes:
        epoch: the epoch in progress (0-based).
        batch: batches of that epoch already done.
        step: steps of the task already done.
        generator_state: the batch-order generator's state at the start of ``epoch`` (``None``:
            not recorded; saved as an empty tensor). A position is made before every step, so
            no tensor is made for it unless it is saved.
    """

    epoch: int = 0
    batch: int = 0
    step: int = 0
    generator_state: torch.Tensor | None = field(default=None, compare=False)

    def as_payload(self) -> dict[str, Any]:
        """Plain values and tensors (a checkpoint entry)."""
        return {
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "generator_state": (
                torch.empty(0, dtype=torch.uint8)
                if self.generator_state is None
                else self.generator_state.clone()
            ),
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> TaskPosition:
        """The position a checkpoint entry records."""
        return cls(
            epoch=int(payload["epoch"]),
            batch=int(payload["batch"]),
            step=int(payload["step"]),
            generator_state=payload["generator_state"],
        )


#: The start of a task (nothing done).
TASK_START = TaskPosition()


@dataclass(frozen=True)
class InTaskResume:
    """An in-task checkpoint a task continues from: its states and its position.

    Attributes:
        payload: the checkpoint (``model``, ``algorithm``, ``optimizer``, ``scheduler``, ``rng``).
        position: where the task stopped.
    """

    payload: Mapping[str, Any]
    position: TaskPosition

    @classmethod
    def from_checkpoint(cls, payload: Mapping[str, Any]) -> InTaskResume:
        """The resume point an ``in_task_<t>.ckpt`` payload records."""
        return cls(payload=payload, position=TaskPosition.from_payload(payload["position"]))

    def load_states(self, *, model: torch.nn.Module, algorithm: torch.nn.Module) -> None:
        """The model's and the algorithm's states (after the task's start hooks ran)."""
        model.load_state_dict(self.payload["model"])
        algorithm.load_state_dict(self.payload["algorithm"])

    def load_optimizer(self, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
        """The task's optimizer (and scheduler) states, once they are built."""
        optimizer.load_state_dict(self.payload["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(self.payload["scheduler"])

    def load_rng(self) -> None:
        """Every RNG state of the moment the task stopped (right before its next step)."""
        set_rng_states(self.payload["rng"])
