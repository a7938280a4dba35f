"""The logits-only module attributions run on, and the guard keeping training state untouched."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from hatcl.backbones.model import ContinualModel
from hatcl.masking.stage import Stage


class BoundLogits(nn.Module):
    """``forward(x) -> logits`` of one task's head, with task id, stage and scale bound by keyword.

    Args:
        model: the continual model.
        task_id: the task whose head (and masks) are used.
        stage: the mask stage (attributions use ``Stage.TRAIN``: the step's soft masks).
        scale: the mask scale s of the step.
    """

    def __init__(
        self, model: ContinualModel, *, task_id: int, stage: Stage, scale: float | None
    ) -> None:
        super().__init__()
        self.model = model
        self.task_id = task_id
        self.stage = stage
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, task_id=self.task_id, stage=self.stage, scale=self.scale).logits


def activation_taps(model: ContinualModel) -> dict[str, nn.Module]:
    """The activation tap of every mask key of ``model``'s backbone, in forward order."""
    backbone = model.backbone
    keys = dict.fromkeys(layer.mask_key for layer in backbone.weighted_layers)
    return {key: backbone.activation_module(key) for key in keys}


@contextmanager
def attribution_guard(model: nn.Module) -> Iterator[None]:
    """Run attributions without changing training state, even when they raise.

    Inside: every module in eval mode (no dropout or gate noise, no batch-norm statistics
    update), gradients enabled, the global RNG streams (torch CPU and the model's CUDA devices,
    NumPy) forked. On exit: train/eval flags, every parameter's ``.grad`` and the RNG states
    are restored.
    """
    modes = [(module, module.training) for module in model.modules()]
    grads = [(param, param.grad) for param in model.parameters()]
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=devices), torch.enable_grad():
        try:
            model.eval()
            yield
        finally:
            for module, training in modes:
                module.training = training
            for param, grad in grads:
                param.grad = grad
            np.random.set_state(numpy_state)
