"""Shared helpers: tiny backbones and a training loop calling the algorithm hooks in order."""

from __future__ import annotations

import pytest
import torch

from hatcl.backbones.cnn import CNNBackbone
from hatcl.backbones.model import ContinualModel
from hatcl.backbones.resnet import ResNetBackbone
from hatcl.heads.heads import TaskIncrementalHeads
from hatcl.masking.stage import Stage
from hatcl.training.step import run_training_step

CNN_SHAPE = (2, 16, 16)
RESNET_SHAPE = (3, 8, 8)


def tiny_backbone(kind: str, *, batch_norm: str = "none", masked: bool = True):
    """A small CNN or ResNet-18 (width 8) that runs in milliseconds."""
    if kind == "cnn":
        return CNNBackbone(
            input_shape=CNN_SHAPE,
            channels=(4, 8, 6),
            kernel_sizes=(4, 3, 2),
            fc_dims=(16, 12),
            conv_dropout=0.2,
            fc_dropout=0.5,
            batch_norm=batch_norm,
            masked=masked,
        )
    return ResNetBackbone(
        input_shape=RESNET_SHAPE, width=8, small_input=True, batch_norm=batch_norm, masked=masked
    )


def input_shape(kind: str) -> tuple[int, int, int]:
    """The input shape :func:`tiny_backbone` was built for."""
    return CNN_SHAPE if kind == "cnn" else RESNET_SHAPE


def tiny_model(kind: str, *, batch_norm: str = "none", masked: bool = True) -> ContinualModel:
    """A tiny backbone with task-incremental heads."""
    backbone = tiny_backbone(kind, batch_norm=batch_norm, masked=masked)
    return ContinualModel(
        backbone=backbone, heads=TaskIncrementalHeads(input_dim=backbone.output_dim)
    )


def task_batches(kind: str, *, seed: int, batches: int, batch_size: int = 16):
    """Random inputs with labels from a fixed rule (class = sign of the mean of channel 0)."""
    generator = torch.Generator().manual_seed(seed)
    result = []
    for _ in range(batches):
        x = torch.randn(batch_size, *input_shape(kind), generator=generator)
        y = (x[:, 0].mean(dim=(1, 2)) > 0).long()
        result.append((x, y))
    return result


def train_task(model: ContinualModel, algorithm, *, task_id: int, batches, epochs: int = 1):
    """Train one task exactly as the runner and ContinualModule do (docs/spec.md §3 hook order)."""
    model.setup_task(task_id=task_id, num_classes=2)
    algorithm.on_task_start(task_id=task_id, model=model)
    optimizer = torch.optim.Adam(list(algorithm.trainable_parameters(model)), lr=1e-2)
    model.train()
    for _ in range(epochs):
        for index, (x, y) in enumerate(batches):
            run_training_step(
                model=model,
                algorithm=algorithm,
                optimizer=optimizer,
                inputs=x,
                targets=y,
                task_id=task_id,
                batch_index=index,
                num_batches=len(batches),
            )
    algorithm.on_task_end(task_id=task_id, model=model, task_data=None)


@torch.no_grad()
def task_logits(model: ContinualModel, x: torch.Tensor, *, task_id: int) -> torch.Tensor:
    """Logits of ``task_id`` at test stage (eval mode, the task's stored mask and head)."""
    model.eval()
    return model(x, task_id=task_id, stage=Stage.TEST).logits


class Kit:
    """The helpers above, handed to tests by the ``kit`` fixture."""

    tiny_backbone = staticmethod(tiny_backbone)
    tiny_model = staticmethod(tiny_model)
    input_shape = staticmethod(input_shape)
    task_batches = staticmethod(task_batches)
    train_task = staticmethod(train_task)
    task_logits = staticmethod(task_logits)


@pytest.fixture
def kit() -> type[Kit]:
    """Tiny backbones, data and the hook-ordered training loop."""
    return Kit


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
