"""A backbone and its heads, with a typed forward output."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hatcl.backbones.base import Backbone, BackboneOutput
from hatcl.masking.stage import Stage


@dataclass(frozen=True)
class ModelOutput:
    """Logits of the selected head and everything the backbone produced."""

    logits: torch.Tensor
    backbone: BackboneOutput


class ContinualModel(nn.Module):
    """Backbone followed by the head of the given task.

    Args:
        backbone: any :class:`Backbone`.
        heads: a head container with ``setup_task(task_id=, num_classes=)`` and
            ``forward(features, task_id=)``.
    """

    def __init__(self, *, backbone: Backbone, heads: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = heads

    def setup_task(self, *, task_id: int, num_classes: int) -> None:
        """Create the task's head and per-task backbone parts.

        What is created takes the device and floating dtype of the model's existing
        parameters (a float64 or a GPU model gets a float64 or a GPU head).
        """
        like = next((p for p in self.parameters() if p.is_floating_point()), None)
        self.backbone.setup_task(task_id)
        self.heads.setup_task(task_id=task_id, num_classes=num_classes)
        if like is not None:
            self.to(device=like.device, dtype=like.dtype)  # moves only what does not match

    def forward(
        self, x: torch.Tensor, *, task_id: int, stage: Stage, scale: float | None = None
    ) -> ModelOutput:
        out = self.backbone(x, task_id=task_id, stage=stage, scale=scale)
        return ModelOutput(logits=self.heads(out.features, task_id=task_id), backbone=out)
