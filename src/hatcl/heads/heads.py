"""Output heads: one linear head per task (TIL), one shared head (DIL), all seen classes (CIL).

Every head container has ``setup_task``, ``head(task_id)``, ``forward(features, task_id=)`` and
``training_targets(targets, task_id=, task_ids=)`` (the labels its training logits are scored
against: the task's own labels, or global labels under CIL).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


class TaskIncrementalHeads(nn.Module):
    """One linear head per task id, created once when the task is first set up.

    Args:
        input_dim: the backbone's output size.
        per_task_network: whether the algorithm trains one network per task (accepted for a
            uniform constructor: a per-task head trains the same either way).
    """

    #: Whether a test input comes with its task id (otherwise the task is inferred).
    task_id_at_test: ClassVar[bool] = True

    def __init__(self, *, input_dim: int, per_task_network: bool = False) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.per_task_network = per_task_network
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

    def training_targets(
        self, targets: torch.Tensor, *, task_id: int, task_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The labels the training logits are scored against: the task's own labels."""
        return targets


class DomainIncrementalHead(nn.Module):
    """One linear head shared by every task (HAT-family masks still need the task id).

    Args:
        input_dim: the backbone's output size.
        per_task_network: whether the algorithm trains one network per task (such an algorithm
            predicts the task at test time, since a DIL test input comes without its task id).
    """

    task_id_at_test: ClassVar[bool] = False

    def __init__(self, *, input_dim: int, per_task_network: bool = False) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.per_task_network = per_task_network
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

    def training_targets(
        self, targets: torch.Tensor, *, task_id: int, task_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The labels the training logits are scored against: the shared classes."""
        return targets


class ClassIncrementalHeads(TaskIncrementalHeads):
    """One output block per task over global labels; the logits of all seen classes (CIL).

    Task tau's block holds its ``k_tau`` classes; global label = ``offset(tau)`` + the task's own
    label, ``offset(tau)`` being the number of classes of tasks 1..tau-1 (the split's class
    order). The blocks are the same linear layers, created in the same order, as those of
    :class:`TaskIncrementalHeads`, so a per-task-network algorithm trains exactly as under TIL.

    ``forward(features, task_id=)`` gives, for a shared-network algorithm
    (``per_task_network=False``), the logits of every class seen so far (all blocks, in task
    order, ``task_id`` ignored) to be scored against global labels
    (:meth:`training_targets`); for a per-task-network algorithm, task ``task_id``'s block only,
    scored against the task's own labels.

    Args:
        input_dim: the backbone's output size.
        per_task_network: whether the algorithm trains one network (mask) per task.
    """

    task_id_at_test: ClassVar[bool] = False

    def forward(self, features: torch.Tensor, *, task_id: int) -> torch.Tensor:
        if self.per_task_network:
            return self.head(task_id)(features)
        return self.seen_logits(features)

    def seen_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Logits of every class of every task set up so far, concatenated in task order."""
        return torch.cat([head(features) for head in self.heads.values()], dim=-1)

    def offset(self, task_id: int) -> int:
        """Global label of task ``task_id``'s first class (classes of the tasks before it)."""
        self.head(task_id)
        return sum(self.heads[str(t)].out_features for t in range(1, task_id))

    def block(self, logits: torch.Tensor, task_id: int) -> torch.Tensor:
        """The columns of task ``task_id``'s classes in all-seen-class ``logits``."""
        start = self.offset(task_id)
        return logits[..., start : start + self.head(task_id).out_features]

    def training_targets(
        self, targets: torch.Tensor, *, task_id: int, task_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Global labels for a shared-network algorithm, the task's own labels otherwise.

        Args:
            targets: the task's own labels (``0..k_tau - 1``).
            task_id: the task of every sample (when ``task_ids`` is ``None``).
            task_ids: per-sample 1-based task ids of a mixed-task batch (e.g. joint training).
        """
        if self.per_task_network:
            return targets
        if not isinstance(targets, torch.Tensor):  # lazily gathered labels: gather them all
            targets = targets[torch.arange(len(targets))]
        if task_ids is None:
            return targets + self.offset(task_id)
        offsets = [self.offset(int(t)) for t in range(1, len(self.heads) + 1)]
        table = torch.tensor(offsets, dtype=targets.dtype, device=targets.device)
        return targets + table[task_ids - 1]
