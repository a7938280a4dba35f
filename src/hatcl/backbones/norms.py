"""Batch-norm placements: none, shared by all tasks, or independent per task."""

from __future__ import annotations

import torch
from torch import nn


def _batch_norm(num_features: int, dims: int) -> nn.Module:
    return nn.BatchNorm1d(num_features) if dims == 1 else nn.BatchNorm2d(num_features)


class NoNorm(nn.Module):
    """No normalisation."""

    def __init__(self, *, num_features: int, dims: int = 1) -> None:
        super().__init__()

    def setup_task(self, task_id: int) -> None:
        """Nothing to prepare."""

    def forward(self, x: torch.Tensor, *, task_id: int) -> torch.Tensor:
        return x


class SharedNorm(nn.Module):
    """One batch norm shared by every task (its running statistics drift across tasks)."""

    def __init__(self, *, num_features: int, dims: int = 1) -> None:
        super().__init__()
        self.norm = _batch_norm(num_features, dims)

    def setup_task(self, task_id: int) -> None:
        """Nothing to prepare."""

    def forward(self, x: torch.Tensor, *, task_id: int) -> torch.Tensor:
        return self.norm(x)


class PerTaskNorm(nn.Module):
    """One batch norm per task, created once when the task is set up."""

    task_specific = True  # the forward depends on task_id (Backbone.depends_on_task)

    def __init__(self, *, num_features: int, dims: int = 1) -> None:
        super().__init__()
        self.num_features = num_features
        self.dims = dims
        self.norms = nn.ModuleDict()

    def setup_task(self, task_id: int) -> None:
        """Create the task's batch norm if it does not exist yet."""
        if str(task_id) not in self.norms:
            reference = next(iter(self.norms.values()), None)
            norm = _batch_norm(self.num_features, self.dims)
            if reference is not None:
                norm.to(device=reference.weight.device, dtype=reference.weight.dtype)
            self.norms[str(task_id)] = norm

    def forward(self, x: torch.Tensor, *, task_id: int) -> torch.Tensor:
        key = str(task_id)
        if key not in self.norms:
            raise ValueError(f"task {task_id} has no batch norm; set up tasks {list(self.norms)}")
        return self.norms[key](x)
