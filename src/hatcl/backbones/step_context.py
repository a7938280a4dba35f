"""The context of one training step: what the hooks of algorithms and importance measures read.

It lives beside the model's forward output (:mod:`hatcl.backbones.model`) so that both
``algorithms/`` and ``importance/`` can use it without importing each other
(docs/architecture.md, layers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hatcl.backbones.model import ContinualModel, ModelOutput


@dataclass(frozen=True)
class StepContext:
    """Everything a hook may read about the current training step.

    ``gradients_finite`` is set (from the optimizer step on) when the loop checks gradients
    because a grad scaler may skip the step (``16-mixed``): a 0-dim bool tensor, ``False`` when
    some gradient was inf or nan and the optimizer step was skipped; hooks must then change no
    state (use it in ``torch.where``, never in a Python ``if``: no host sync). ``None``: the
    step was not checked (every optimizer step is applied).
    """

    model: ContinualModel
    task_id: int
    batch_index: int
    num_batches: int
    scale: float | None
    inputs: torch.Tensor
    targets: torch.Tensor
    output: ModelOutput
    task_ids: torch.Tensor | None = None
    gradients_finite: torch.Tensor | None = None
