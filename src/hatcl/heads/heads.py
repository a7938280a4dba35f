"""Output heads: one linear head per task (TIL) or one shared head (DIL)."""

from __future__ import annotations

import torch
from torch import nn


class TaskIncrementalHeads(nn.Module):
    """One linear head per task id, created once when the task is first set up.

    Args:
        input_dim: the backbone's output size.
    """

    def __init__(self, *, input_dim: int) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.heads = nn.ModuleDict()

    def setup_task(self, *, task_id: int, num_classes: int) -> None:
        """Create the head of ``task_id`` unless it exists (a head is never re-created)."""
        key = str(task_id)
        if key in self.heads:
            existing = self.heads[key].out_features
            if existing != num_classes:
                raise ValueError(
                    f"task {task_id} already has a head with {existing} classes, not {num_classes}"
                )
            return
        self.heads[key] = nn.Linear(self.input_dim, num_classes)

    def head(self, task_id: int) -> nn.Linear:
        """The head of ``task_id``."""
        key = str(task_id)
        if key not in self.heads:
            raise ValueError(
                f"no head for task {task_id}; heads exist for tasks {list(self.heads)}"
            )
        return self.heads[key]

    def forward(self, features: torch.Tensor, *, task_id: int) -> torch.Tensor:
        return self.head(task_id)(features)


class DomainIncrementalHead(nn.Module):
    """One linear head shared by every task (HAT-family masks still need the task id).

    Args:
        input_dim: the backbone's output size.
    """

    def __init__(self, *, input_dim: int) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.linear: nn.Linear | None = None

    def setup_task(self, *, task_id: int, num_classes: int) -> None:
        """Create the shared head at the first task; later tasks must have as many classes."""
        if self.linear is None:
            self.linear = nn.Linear(self.input_dim, num_classes)
        elif self.linear.out_features != num_classes:
            raise ValueError(
                f"the DIL head has {self.linear.out_features} classes; task {task_id} has "
                f"{num_classes}: every task of a domain-incremental scenario needs the same classes"
            )

    def head(self, task_id: int) -> nn.Linear:
        """The shared head."""
        if self.linear is None:
            raise ValueError("the DIL head is created by setup_task of the first task")
        return self.linear

    def forward(self, features: torch.Tensor, *, task_id: int) -> torch.Tensor:
        return self.head(task_id)(features)
