"""Independent: a fresh backbone per task, the no-transfer reference (and the FWT baseline)."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
from torch import nn

from hatcl.algorithms.base import Algorithm
from hatcl.backbones.base import Backbone, BackboneOutput
from hatcl.backbones.model import ContinualModel
from hatcl.masking.stage import Stage


class PerTaskBackbones(Backbone):
    """One backbone per task id, each a freshly initialised copy of the configured backbone.

    Task 1 uses the backbone as built (seeded like every other algorithm's); task t > 1 gets a
    deep copy with every submodule's ``reset_parameters`` called. All copies are submodules, so
    ``state_dict`` holds every task's backbone; ``setup_task`` rebuilds the structure on resume.

    Args:
        first: the backbone as built for the experiment (becomes task 1's backbone).
    """

    task_specific = True  # the forward depends on task_id (Backbone.depends_on_task)

    def __init__(self, *, first: Backbone) -> None:
        super().__init__()
        self.backbones = nn.ModuleDict({"1": first})
        self.output_dim = first.output_dim
        self.weighted_layers = ()  # the per-task layers live under backbones.<task>
        self.masker = None

    def setup_task(self, task_id: int) -> None:
        """Create task ``task_id``'s fresh backbone (once), then set it up."""
        key = str(task_id)
        if key not in self.backbones:
            fresh = copy.deepcopy(self.backbones["1"])
            for module in fresh.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
            self.backbones[key] = fresh
        self.backbones[key].setup_task(task_id)

    def backbone(self, task_id: int) -> Backbone:
        """The backbone of ``task_id``."""
        key = str(task_id)
        if key not in self.backbones:
            raise ValueError(
                f"no backbone for task {task_id}; backbones exist for tasks {list(self.backbones)}"
            )
        return self.backbones[key]

    def forward(
        self, x: torch.Tensor, *, task_id: int, stage: Stage, scale: float | None = None
    ) -> BackboneOutput:
        """Run the backbone of ``task_id``."""
        return self.backbone(task_id)(x, task_id=task_id, stage=stage, scale=scale)


class Independent(Algorithm):
    """Every task trains its own freshly initialised backbone and head: no transfer, no forgetting.

    Its accuracy-matrix diagonal is the single-task reference ``b[tau]`` of forward transfer.
    With ``head=dil`` the one shared head is still trained by every task (use ``til`` for a
    fully independent reference).
    """

    per_task_network = True

    def __init__(self) -> None:
        super().__init__()
        self._task_id = 1

    def configure_model(self, *, model: ContinualModel) -> None:
        """Replace the backbone by one backbone per task."""
        if not isinstance(model.backbone, PerTaskBackbones):
            model.backbone = PerTaskBackbones(first=model.backbone)

    def on_task_start(self, *, task_id: int, model: ContinualModel) -> None:
        """Remember the task whose backbone and head are trained."""
        self._task_id = task_id

    def trainable_parameters(self, model: ContinualModel) -> Iterator[nn.Parameter]:
        """The current task's backbone and head."""
        backbone = _per_task(model).backbone(self._task_id)
        head = model.heads.head(self._task_id)
        return (p for m in (backbone, head) for p in m.parameters() if p.requires_grad)


def _per_task(model: ContinualModel) -> PerTaskBackbones:
    if not isinstance(model.backbone, PerTaskBackbones):
        raise TypeError(
            "the independent algorithm needs the model built with its configure_model hook "
            f"(backbone is {type(model.backbone).__name__}, not PerTaskBackbones)"
        )
    return model.backbone
