"""Joint: after each task, train on the union of every task seen so far (the upper reference)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hatcl.algorithms.base import Algorithm, TaskView, TrainingSplit


class Joint(Algorithm):
    """Multi-task training on all seen tasks' training data, each sample through its own head.

    At task t the loop trains (``trainer.max_epochs`` epochs, continuing from the current
    weights) on the union of the training splits of tasks 1..t; batches carry each sample's task
    id and the loop routes it through its task's head. The accuracy matrix has the usual form:
    row t is the joint model after tasks 1..t. Training cost grows with t (O(T^2) in total).
    """

    def training_split(
        self, *, task_data: TaskView, seen_tasks: Sequence[TaskView]
    ) -> TrainingSplit:
        """The union of ``seen_tasks``' training splits with per-sample task ids."""
        tasks = list(seen_tasks) or [task_data]
        if tasks[-1].task_id != task_data.task_id:
            raise ValueError(
                f"seen_tasks must end with the current task {task_data.task_id}, "
                f"got task ids {[t.task_id for t in tasks]}"
            )
        return TrainingSplit(
            x=torch.cat([t.train.x for t in tasks]),
            y=torch.cat([t.train.y for t in tasks]),
            task_ids=torch.cat(
                [torch.full((len(t.train.y),), t.task_id, dtype=torch.long) for t in tasks]
            ),
        )
